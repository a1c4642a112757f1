"""MLflow tracking, the model registry and the promotion gates.

Every pipeline run is one MLflow run; a model reaches the ``champion`` alias only through gates.

Public surface::

    from xlir.registry import (load_gates, evaluate_gates, track_pipeline_run, register_model,
                               ensure_baseline, gate_and_promote, promote, rollback, registry_table)

    gates = load_gates("default", overrides={"retrieval.min_gain_mul": 0.01})
    with track_pipeline_run(dag_run_id) as run:           # MLFLOW_TRACKING_URI
        run.log_validation_report(report)
        with run.child("hybrid") as child:                 # one nested run per strategy
            child.log_training(train_result)               # train.* params, data versions, loss curve
            child.log_evaluation(eval_result)              # every metric, the results folder
    ensure_baseline("bundled:multilingual-e5-small", eval_cfg)        # first champion, once
    v = register_model(train_result.model_dir, child.run_id, dag_run_id, eval_result.metrics, eval_cfg,
                       dataset_version=eval_result.info["dataset_version"])
    result = gate_and_promote(v, dag_run_id, gates)      # decision, aliases, tags, model card

Gate logic (``load_gates``, ``evaluate_gates``) is pure and needs no server; everything else
talks to the tracking server named by ``tracking_uri`` or ``MLFLOW_TRACKING_URI``. mlflow is
imported only when a server is used. CLI: ``xlir.registry.cli.app`` (``xlir registry ...``).

Layers, bottom up; a module imports only modules of the layers below its own (``LAYERS``, checked by
``tests/test_registry_layers.py``, function-level imports included):

1. ``mlflow_errors`` (MLflow's error codes), ``server``, ``gates`` (pure decisions), ``signature``
   (what a logged encoder takes and returns);
2. ``lock`` (the registry lock), ``tracking`` (runs, what they log, evaluation keys);
3. ``versions``: registered versions, tags, aliases read and written;
4. ``report`` and ``charts`` (the comparison PNGs), then ``card``: what a version and its decision
   look like to a reader (the card, the version's Markdown description);
5. ``promotion``: decide, crown the baseline, move the aliases, write the card;
6. this package's functions and ``cli``.
"""

from __future__ import annotations

LAYERS = (
    ("mlflow_errors", "server", "gates", "signature"),
    ("lock", "tracking"),
    ("versions",),
    ("report", "charts"),
    ("card",),
    ("promotion",),
    ("__init__", "cli"),
)

from xlir.registry.gates import (
    GateCheck,
    GateConfig,
    GateConfigError,
    GateDecision,
    GateError,
    evaluate_gates,
    gate_profiles,
    load_gates,
)
from xlir.registry.lock import RegistryLock, RegistryLockTimeout
from xlir.registry.promotion import EvalMismatchError, PromotionResult
from xlir.registry.tracking import EXPERIMENT, PipelineRun, TrackingError, track_pipeline_run
from xlir.registry.versions import CHAMPION, MODEL_NAME, PREVIOUS, Registry, RegistryError, eval_key


def open_registry(tracking_uri: str | None = None, name: str = MODEL_NAME, **kw) -> Registry:
    """The registered model ``name`` on the tracking server (checked reachable)."""
    return Registry(tracking_uri, name, **kw)


def register_model(model_dir, run_id: str, pipeline_run_id: str, metrics: dict[str, float], eval_config, *,
                   tracking_uri: str | None = None, name: str = MODEL_NAME, **kw) -> int:
    """Log and register a sentence-transformers model once per pipeline run; returns the version."""
    return open_registry(tracking_uri, name).register_model(model_dir, run_id, pipeline_run_id, metrics, eval_config, **kw)


def ensure_baseline(base_model: str, eval_config, *, tracking_uri: str | None = None, name: str = MODEL_NAME,
                    evaluator=None, also_evaluate: tuple = (), experiment: str = EXPERIMENT) -> int:
    """The champion's version; registers and crowns the untuned base encoder when there is none (its run
    and logged model in ``experiment``: the pipeline's, so the Models tab shows it beside the candidates)."""
    from xlir.registry import promotion

    return promotion.ensure_baseline(open_registry(tracking_uri, name, experiment=experiment), base_model, eval_config,
                                     evaluator=evaluator, also_evaluate=also_evaluate)


def decide(version: int, gates: GateConfig | str = "default", *, overrides: dict | None = None,
           tracking_uri: str | None = None, name: str = MODEL_NAME, evaluator=None) -> GateDecision:
    """Gate ``version`` against the current champion; records nothing."""
    from xlir.registry import promotion

    gates = gates if isinstance(gates, GateConfig) else load_gates(gates, overrides)
    return promotion.decide(open_registry(tracking_uri, name), version, gates, evaluator=evaluator)


def promote(version: int, decision: GateDecision, pipeline_run_id: str, *, tracking_uri: str | None = None,
            name: str = MODEL_NAME, force: bool = False, evaluator=None) -> PromotionResult:
    """Move ``champion`` to ``version`` on a passed decision (re-checked if the champion changed), else tag it rejected."""
    from xlir.registry import promotion

    return promotion.promote(open_registry(tracking_uri, name), version, decision, pipeline_run_id,
                             force=force, evaluator=evaluator)


def gate_and_promote(version: int, pipeline_run_id: str, gates: GateConfig | str = "default", *,
                     overrides: dict | None = None, tracking_uri: str | None = None, name: str = MODEL_NAME,
                     evaluator=None, model_card: bool = True, decision: GateDecision | None = None) -> PromotionResult:
    """Decide (unless ``decision`` was made already), promote or reject, record it, write the model card.

    The entry point for callers that hold a version number rather than a ``Registry``: the
    pipeline's ``promote`` task and scripts. It opens the registered model on the tracking server,
    resolves the gate profile, and hands over to ``xlir.registry.promotion.gate_and_promote``, which
    documents each step, the errors, and what is recorded.

    Args:
        version: the registered version to gate.
        pipeline_run_id: who decides (the DAG run id), kept in the version's tags.
        gates: a profile name of the gate file (``default``, ``strict``, ``smoke``), or a resolved
            ``GateConfig``.
        overrides: per-run threshold overrides (``{"retrieval.min_gain_mul": 0.01}``), applied when
            ``gates`` is a profile name; ignored when it is a ``GateConfig`` already.
        tracking_uri: the MLflow tracking server (default: ``MLFLOW_TRACKING_URI``).
        name: the registered model (default ``xlir-encoder``).
        evaluator: ``EvalConfig -> EvalResult`` for re-evaluating the champion (default:
            ``xlir.evaluation.evaluate``).
        model_card: write the model card after promoting or rejecting.
        decision: a decision already made for ``version`` (the DAG's ``gate`` task), acted on as
            it is unless the champion changed since.

    Returns:
        The ``PromotionResult`` (``status`` ``passed``, ``rejected`` or ``already-champion``; the
        champion and previous champion afterwards; the failed checks).

    Raises:
        TrackingError: no tracking server configured, or none answers.
        GateConfigError: unknown profile or bad override.
        GateError, EvalMismatchError, RegistryError: as ``xlir.registry.promotion.gate_and_promote``.

    Example:
        ```python
        from xlir.registry import gate_and_promote

        result = gate_and_promote(2, "manual__2026-12-01", "default",
                                  overrides={"retrieval.tolerance_mo": 0.02},
                                  tracking_uri="http://127.0.0.1:5000")
        print(result.message)   # "v2 is champion (previous champion v1)" or the gate's summary
        ```
    """
    from xlir.registry import promotion

    gates = gates if isinstance(gates, GateConfig) else load_gates(gates, overrides)
    return promotion.gate_and_promote(open_registry(tracking_uri, name), version, pipeline_run_id, gates,
                                      evaluator=evaluator, model_card=model_card, decision=decision)


def rollback(*, by: str = "manual", reason: str = "", tracking_uri: str | None = None,
             name: str = MODEL_NAME) -> PromotionResult:
    """``champion`` back to ``previous-champion``."""
    from xlir.registry import promotion

    return promotion.rollback(open_registry(tracking_uri, name), by=by, reason=reason)


def registry_table(*, tracking_uri: str | None = None, name: str = MODEL_NAME, limit: int | None = 50,
                   dataset: str = "xquad-r") -> list[dict]:
    """One dict per version, newest first: aliases, gate status, key metrics, provenance."""
    return open_registry(tracking_uri, name).table(limit=limit, dataset=dataset)


__all__ = [
    "CHAMPION",
    "MODEL_NAME",
    "PREVIOUS",
    "EvalMismatchError",
    "GateCheck",
    "GateConfig",
    "GateConfigError",
    "GateDecision",
    "GateError",
    "PipelineRun",
    "PromotionResult",
    "Registry",
    "RegistryError",
    "RegistryLock",
    "RegistryLockTimeout",
    "TrackingError",
    "decide",
    "ensure_baseline",
    "eval_key",
    "evaluate_gates",
    "gate_and_promote",
    "gate_profiles",
    "load_gates",
    "open_registry",
    "promote",
    "register_model",
    "registry_table",
    "rollback",
    "track_pipeline_run",
]
