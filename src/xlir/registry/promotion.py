"""Gate a registered version against the champion, then move (or keep) the aliases.

``decide`` compares the candidate with the current champion on the same evaluation config
(re-evaluating the champion's model when their configs differ, or refusing, per the gate
profile's ``on_eval_mismatch``). ``promote`` acts on a decision: a pass moves ``champion`` to the
candidate and the old champion to ``previous-champion``; a fail tags ``gate.status=rejected``
and moves nothing. ``rollback`` moves ``champion`` back to ``previous-champion``.

A promotion records its decision (version tags, ``gate/decision.json``) before it moves the
aliases; a retry that finds the version already champion by the same pipeline run completes what
is missing (the decision when given, the model card) and reports ``passed``. A champion that
disappeared (its version deleted) is never silently replaced by the untuned baseline while a
``previous-champion`` exists: ``ensure_baseline`` and ``rollback`` give the alias back to it and
say so (a warning, ``restored_by``/``restored_reason`` tags), and ``decide`` refuses to gate
against no champion in that state.

Concurrency (MLflow has no compare-and-set on aliases): every alias move happens inside the
registry lock (``xlir.registry.lock``), after re-reading ``champion``. If the champion is no
longer the one the decision compared with, the lock is released, the gates are re-run against
the new champion, and the move is tried again; so two racing promotions end with one champion
that passed against the champion it replaced, and both decisions recorded. After every move
the alias is read back and checked.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

from xlir.errors import XlirError
from xlir.registry.gates import DECISION_FILE, GateConfig, GateDecision, GateError, evaluate_gates, languages_of
from xlir.registry.tracking import eval_config_dict, eval_key, track_pipeline_run
from xlir.registry.versions import (
    CHAMPION,
    EVAL_KEY_FIELDS,
    PREVIOUS,
    TAG_PREVIOUS,
    Evaluator,
    Registry,
    RegistryError,
    VersionInfo,
    check_gated_precision,
    default_evaluator,
    metrics_of,
)

log = logging.getLogger(__name__)

CARD_FILE = "model_card.md"


class EvalMismatchError(XlirError):
    """Candidate and champion were evaluated on different configs and the gates may not re-evaluate."""


@dataclass
class PromotionResult:
    """What happened to one version; ``as_dict()`` is small and JSON-ready (an XCom)."""

    version: int
    promoted: bool
    champion: int | None
    previous_champion: int | None
    status: str  # passed | rejected | already-champion | rolled-back
    failed: list[str] = field(default_factory=list)
    rechecks: int = 0
    message: str = ""
    decision: GateDecision | None = None

    def as_dict(self) -> dict:
        d = asdict(self)
        d["decision"] = self.decision.model_dump(mode="json") if self.decision else None
        return d


def key_metrics(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    """The metrics a model card and a decision keep: averages, bias, per-language Mul. mAP."""
    names = [f"{prefix}.{m}" for m in ("map.mo", "map.cr", "map.mul", "r1.mo", "r1.cr", "r10.mul", "rank_distance")]
    names += [f"{prefix}.map.mul.{x}" for x in languages_of(metrics, prefix)]
    return {n: float(metrics[n]) for n in names if n in metrics}


# ---------------------------------------------------------------- deciding


def reference_metrics(reg: Registry, candidate: VersionInfo, champion: VersionInfo, gates: GateConfig,
                      evaluator: Evaluator | None = None) -> tuple[dict[str, float], dict]:
    """The champion's metrics on the candidate's evaluation config, and where they came from."""
    ref = {"kind": "champion", "version": champion.version, "eval_key": candidate.eval_key, "reevaluated": False}
    if candidate.eval_key and champion.eval_key == candidate.eval_key:
        return reg.version_metrics(champion), ref
    cand_cfg, champ_cfg = candidate.eval_config, champion.eval_config
    differs = {k: (champ_cfg.get(k), cand_cfg.get(k)) for k in (*EVAL_KEY_FIELDS, "dataset_version")
               if champ_cfg.get(k) != cand_cfg.get(k)}
    if gates.on_eval_mismatch == "refuse":
        raise EvalMismatchError(
            f"candidate v{candidate.version} and champion v{champion.version} were evaluated on different configs "
            f"(field: (champion, candidate) = {differs}); the gates compare like with like. Evaluate the candidate "
            "on the champion's config, or let the gates re-evaluate the champion (--gate on_eval_mismatch=reevaluate)"
        )
    from xlir.evaluation.config import EvalConfig

    cfg_data = {k: v for k, v in cand_cfg.items() if k != "dataset_version"}
    if not cfg_data:
        raise RegistryError(f"candidate v{candidate.version} carries no eval.config tag; register it with its evaluation config")
    ref.update(champion_eval_key=champion.eval_key, differs=differs)
    stored = _stored_reevaluation(reg, champion, candidate.eval_key)
    if stored is not None:  # evaluated on this key before (an earlier gate, another run): reuse it
        return stored, {**ref, "reevaluated": True, "reused": REEVALUATION_DIR + f"/{candidate.eval_key}.json"}
    folder = reg.download(champion.version)
    log.info("re-evaluating champion v%d on the candidate's config (differs in %s)", champion.version, differs)
    result = (evaluator or default_evaluator)(EvalConfig(**{**cfg_data, "model": str(folder), "output_dir": None}))
    got_version = (getattr(result, "info", None) or {}).get("dataset_version")
    want = cand_cfg.get("dataset_version")
    if got_version and want and got_version != want:
        raise EvalMismatchError(
            f"candidate v{candidate.version} was evaluated on {cand_cfg.get('dataset')} version {want}, but this machine "
            f"has version {got_version}; the champion cannot be re-evaluated on the candidate's data"
        )
    metrics = metrics_of(result)
    _store_reevaluation(reg, champion, candidate.eval_key, metrics, cand_cfg)
    return metrics, {**ref, "reevaluated": True}


REEVALUATION_DIR = "reference"
"""Folder of a version's run holding its re-evaluations on other eval keys (``<eval key>.json``)."""


def _stored_reevaluation(reg: Registry, version: VersionInfo, key: str | None) -> dict[str, float] | None:
    """Metrics of ``version`` on eval ``key`` saved by an earlier re-evaluation, else None."""
    if not key or not version.run_id:
        return None
    import mlflow.artifacts

    try:
        data = mlflow.artifacts.load_dict(f"runs:/{version.run_id}/{REEVALUATION_DIR}/{key}.json")
    except Exception:  # noqa: BLE001 - absent (the usual case) or unreadable: evaluate again
        return None
    if data.get("eval_key") != key or data.get("version") != version.version:
        return None
    return {k: float(v) for k, v in data.get("metrics", {}).items()}


def _store_reevaluation(reg: Registry, version: VersionInfo, key: str | None, metrics: dict, eval_config: dict) -> None:
    """Keep a re-evaluation in the version's run, so no later gate on the same key evaluates it again."""
    if not key or not version.run_id:
        return
    try:
        reg.client.log_dict(version.run_id, {"version": version.version, "eval_key": key, "eval_config": eval_config,
                                             "metrics": metrics}, f"{REEVALUATION_DIR}/{key}.json")
    except Exception as e:  # noqa: BLE001 - the decision stands; the next gate evaluates again
        log.warning("could not keep champion v%d's re-evaluation on %s: %s", version.version, key, e)


def decide(reg: Registry, version: int, gates: GateConfig, *, evaluator: Evaluator | None = None) -> GateDecision:
    """Run ``gates`` on version ``version`` against the current champion (no champion: absolute checks only)."""
    cand = reg.version(version)
    try:
        check_gated_precision(cand.eval_config, f"cannot gate v{version}")
    except RegistryError as e:
        raise GateError(str(e)) from None
    dataset = cand.eval_config.get("dataset")
    if dataset and dataset != gates.dataset:
        raise GateError(
            f"gate profile {gates.profile!r} gates on {gates.dataset!r} but v{version} was evaluated on {dataset!r}; "
            f"register it with its {gates.dataset} evaluation, or override --gate dataset={dataset}"
        )
    champion = reg.champion()
    if champion is not None and champion.version == version:
        raise RegistryError(f"v{version} is already the champion; nothing to decide")
    if champion is None and (prev := reg.alias(PREVIOUS)) is not None:
        raise GateError(
            f"{reg.name!r} has no champion but previous-champion v{prev.version}: the gates would compare v{version} "
            "with nothing (absolute checks only). Give the alias back first: `xlir registry rollback` (or a pipeline "
            "run's register task, which restores it)"
        )
    cand_metrics = reg.version_metrics(cand)
    if champion is None:
        ref_metrics, reference = None, {"kind": "none", "version": None}
    else:
        ref_metrics, reference = reference_metrics(reg, cand, champion, gates, evaluator)
        reference["metrics"] = key_metrics(ref_metrics, gates.prefix)
    decision = evaluate_gates(cand_metrics, ref_metrics, gates)
    decision.reference = reference
    decision.candidate = {"version": cand.version, "run_id": cand.run_id, "pipeline_run_id": cand.tags.get("pipeline_run_id"),
                          "eval_key": cand.eval_key, "metrics": key_metrics(cand_metrics, gates.prefix)}
    return decision


# ---------------------------------------------------------------- acting


def record(reg: Registry, version: int, decision: GateDecision, by: str) -> None:
    """The decision as version tags and as ``gate/decision.json`` in the version's run."""
    tags = {**decision.tags(), "gate.decided_by": by, "gate.reference_version": decision.reference.get("version") or "",
            "gate.forced": str(decision.forced).lower()}
    reg.set_tags(version, tags)
    run_id = reg.version(version).run_id
    if run_id:
        reg.client.log_text(run_id, decision.to_json() + "\n", DECISION_FILE)


def _check(reg: Registry, alias: str, version: int) -> None:
    now = reg.alias(alias)
    if now is None or now.version != version:
        raise RegistryError(
            f"alias {alias!r} reads v{now.version if now else None} right after being set to v{version}: a writer that "
            "does not take the registry lock moved it; check `xlir registry show` and the writers of this registry"
        )


def promote(reg: Registry, version: int, decision: GateDecision, pipeline_run_id: str, *,
            evaluator: Evaluator | None = None, force: bool = False, max_rechecks: int = 3) -> PromotionResult:
    """Act on ``decision`` for ``version``: move the aliases on a pass (or ``force``), tag a rejection.

    Re-reads ``champion`` under the registry lock; if it changed since ``decision`` was made, the
    gates run again against the new champion (at most ``max_rechecks`` times). Idempotent: the
    version already being champion is success, with nothing moved.
    """
    gates = GateConfig(**decision.gates)
    rechecks = 0
    while True:
        if not decision.passed and not force:
            decision.outcome = {"promoted": False, "rechecks": rechecks}
            record(reg, version, decision, pipeline_run_id)
            current = reg.champion()
            prev = reg.alias(PREVIOUS)
            return PromotionResult(version, False, current.version if current else None, prev.version if prev else None,
                                   "rejected", decision.failed, rechecks, decision.summary(), decision)
        with reg.lock(f"promote v{version} for {pipeline_run_id}"):
            current = reg.champion()
            cur = current.version if current else None
            if cur == version:
                return _already_champion(reg, current, pipeline_run_id, decision)
            if force or cur == decision.reference.get("version"):
                decision.forced = bool(force and (not decision.passed or cur != decision.reference.get("version")))
                decision.outcome = {"promoted": True, "champion": version, "previous_champion": cur, "rechecks": rechecks,
                                    "by": pipeline_run_id}
                # the record first, the aliases last: a promotion interrupted after the move (a lost reply,
                # a killed task) has its decision on file, and its retry completes the rest
                record(reg, version, decision, pipeline_run_id)
                reg.set_tags(version, {TAG_PREVIOUS: cur or "", "promoted_by": pipeline_run_id})
                if cur is not None:
                    reg.client.set_registered_model_alias(reg.name, PREVIOUS, str(cur))
                reg.client.set_registered_model_alias(reg.name, CHAMPION, str(version))
                _check(reg, CHAMPION, version)
                msg = f"v{version} is champion (previous champion v{cur})" if cur else f"v{version} is champion"
                return PromotionResult(version, True, version, cur, "passed", [], rechecks, msg, decision)
        # the champion changed since the decision: gate again, outside the lock
        rechecks += 1
        if rechecks > max_rechecks:
            raise RegistryError(
                f"the champion changed {rechecks} times while v{version} was being promoted; try again later")
        log.info("champion moved from v%s to v%s since the decision on v%d; re-running the gates",
                 decision.reference.get("version"), cur, version)
        decision = decide(reg, version, gates, evaluator=evaluator)
        decision.reference["rechecked_because"] = f"champion changed to v{cur} after the first decision"


def _has_artifact(reg: Registry, run_id: str | None, path: str) -> bool:
    if not run_id:
        return False
    folder = path.rpartition("/")[0] or None
    try:
        return any(f.path == path for f in reg.client.list_artifacts(run_id, folder))
    except Exception as e:  # noqa: BLE001 - unreadable: take it as missing and write it again (idempotent)
        log.warning("cannot list the artifacts of run %s: %s", run_id, e)
        return False


def _recorded_decision(reg: Registry, champion: VersionInfo) -> GateDecision | None:
    """The passed decision recorded for ``champion`` (tags and ``gate/decision.json``), else None."""
    if champion.tags.get("gate.status") != "passed" or not _has_artifact(reg, champion.run_id, DECISION_FILE):
        return None
    import mlflow.artifacts

    try:
        return GateDecision.model_validate_json(
            mlflow.artifacts.load_text(f"runs:/{champion.run_id}/{DECISION_FILE}"))
    except Exception as e:  # noqa: BLE001 - unreadable: record it again when we can
        log.warning("v%d's recorded decision is unreadable (%s)", champion.version, e)
        return None


def _already_champion(reg: Registry, champion: VersionInfo, pipeline_run_id: str,
                      decision: GateDecision | None) -> PromotionResult:
    """``champion`` already holds the alias when a promotion of it (re)starts. When this pipeline run
    moved it (a retry after the move: a lost reply, a killed task), the record is completed: the
    decision is recorded if it is not on file yet, and the result is this run's ``passed``."""
    version = champion.version
    prev = reg.alias(PREVIOUS)
    prev_v = prev.version if prev else None
    if champion.tags.get("promoted_by") != pipeline_run_id:
        return PromotionResult(version, True, version, prev_v, "already-champion", [], 0,
                               f"v{version} is already the champion", decision)
    recorded = _recorded_decision(reg, champion)
    if recorded is None and decision is not None:
        before = champion.tags.get(TAG_PREVIOUS, "")
        decision.outcome = {"promoted": True, "champion": version,
                            "previous_champion": int(before) if before.isdigit() else None,
                            "by": pipeline_run_id, "recorded_on_retry": True}
        log.warning("v%d is champion but its decision was never recorded (the promotion was interrupted); "
                    "recording it now", version)
        record(reg, version, decision, pipeline_run_id)
        recorded = decision
    elif recorded is None:
        log.warning("v%d is champion by pipeline run %s, but no decision was recorded and none was given to "
                    "record; its gate record stays incomplete (`xlir registry show`)", version, pipeline_run_id)
    return PromotionResult(version, True, version, prev_v, "passed", [], 0,
                           f"v{version} is champion (previous champion v{prev_v}); completed on retry", recorded)


def _crown_previous(reg: Registry, prev: VersionInfo, *, exclude: int) -> int | None:
    """Under the registry lock: move ``champion`` to ``prev`` (checked), and ``previous-champion`` one step
    further back, to the version ``prev`` replaced (unless that is ``exclude`` or gone: then no alias).
    Returns the new previous champion's version."""
    reg.client.set_registered_model_alias(reg.name, CHAMPION, str(prev.version))
    _check(reg, CHAMPION, prev.version)
    before = prev.tags.get(TAG_PREVIOUS, "")
    new_prev = None
    if before.isdigit() and int(before) != exclude:
        try:
            new_prev = reg.version(int(before)).version
        except RegistryError:
            new_prev = None
    if new_prev is not None:
        reg.client.set_registered_model_alias(reg.name, PREVIOUS, str(new_prev))
    else:
        reg.client.delete_registered_model_alias(reg.name, PREVIOUS)
    return new_prev


def _restore_previous(reg: Registry, by: str, reason: str) -> VersionInfo | None:
    """Under the registry lock: with no ``champion`` and a ``previous-champion``, give ``champion`` back
    to the previous champion (the last version that held it after passing its gates), step
    ``previous-champion`` one further back, tag the version and warn. None when there is none."""
    prev = reg.alias(PREVIOUS)
    if prev is None:
        return None
    new_prev = _crown_previous(reg, prev, exclude=prev.version)
    reg.set_tags(prev.version, {"restored_by": by, "restored_reason": reason[:4000]})
    log.warning("%s: %s; previous-champion v%d is the champion again (previous-champion now %s)", reg.name, reason,
                prev.version, f"v{new_prev}" if new_prev else "none")
    return reg.alias(CHAMPION)


def restore_previous_champion(reg: Registry, by: str = "manual",
                              reason: str = "the champion alias was missing") -> VersionInfo | None:
    """The champion, after giving the alias back to ``previous-champion`` when it is missing (its
    version deleted, or the alias removed by hand); None when neither alias exists."""
    current = reg.champion()
    if current is not None:
        return current
    with reg.lock(f"restore previous-champion ({by})"):
        current = reg.champion()
        return current if current is not None else _restore_previous(reg, by, reason)


def ensure_baseline(reg: Registry, base_model: str, eval_config, *, evaluator: Evaluator | None = None,
                    pipeline_run_id: str | None = None, also_evaluate: tuple = ()) -> int:
    """The champion's version; with no champion yet, evaluate the untuned ``base_model`` once,
    register it (tags ``baseline=true``, ``gate.status=baseline``) and give it ``champion``.
    ``also_evaluate``: further eval configs (other datasets) logged to the baseline's run, so a
    first candidate has a reference on every dataset it was evaluated on.

    A champion that went missing (its version deleted, the alias removed) while ``previous-champion``
    exists is not replaced by the untuned baseline, which never passed a gate against it: the
    previous champion gets the alias back, with a warning and ``restored_*`` tags."""
    reason = "the champion alias was missing when a pipeline run looked for it"
    current = restore_previous_champion(reg, by=pipeline_run_id or "ensure_baseline", reason=reason)
    if current is not None:
        return current.version
    from xlir.evaluation.config import EvalConfig
    from xlir.models import model_fingerprint, prepare_model

    cfg = eval_config if isinstance(eval_config, EvalConfig) else EvalConfig(**eval_config_dict(eval_config))
    cfg = cfg.model_copy(update={"model": base_model})
    check_gated_precision(cfg, "cannot set up the baseline champion")
    key = pipeline_run_id or f"baseline-{model_fingerprint(base_model)}-{eval_key(cfg)}"
    version = reg.find_version(key)
    if version is None:
        result = (evaluator or default_evaluator)(cfg)
        metrics = metrics_of(result)
        dataset_version = (getattr(result, "info", None) or {}).get("dataset_version")
        with track_pipeline_run(key, tracking_uri=reg.tracking_uri, experiment=reg.experiment, run_name="baseline",
                                tags={"xlir.baseline": "true"}) as run:
            run.log_params({"base_model": base_model})
            if hasattr(result, "output_dir"):
                run.log_evaluation(result)
            else:
                run.log_config(evaluation=cfg)
            for extra in also_evaluate:
                extra = extra if isinstance(extra, EvalConfig) else EvalConfig(**eval_config_dict(extra))
                extra_result = (evaluator or default_evaluator)(extra.model_copy(update={"model": base_model}))
                if hasattr(extra_result, "output_dir"):
                    run.log_evaluation(extra_result)
            version = reg.register_model(prepare_model(base_model), run.run_id, key, metrics, cfg,
                                          dataset_version=dataset_version, baseline=True)
    else:
        version = version.version
    with reg.lock(f"baseline v{version}"):
        current = reg.champion() or _restore_previous(reg, pipeline_run_id or "ensure_baseline", reason)
        if current is None:
            reg.set_tags(version, {"promoted_by": key})
            reg.client.set_registered_model_alias(reg.name, CHAMPION, str(version))
            current = reg.champion()
            crowned = True
        else:
            crowned = False
    if crowned and current.version == version:
        from xlir.registry.card import write_model_card

        write_model_card(reg, version, PromotionResult(version, True, version, None, "baseline",
                                                       message="baseline, first champion"))
    return current.version


def rollback(reg: Registry, by: str = "manual", reason: str = "") -> PromotionResult:
    """``champion`` back to ``previous-champion``; ``previous-champion`` steps one further back
    (the restored version's own predecessor) or is removed. The rolled-back version is tagged.
    With no champion (its version deleted), ``previous-champion`` becomes the champion again."""
    with reg.lock(f"rollback by {by}"):
        current, prev = reg.champion(), reg.alias(PREVIOUS)
        if current is None:
            if prev is None:
                raise RegistryError(f"{reg.name!r} has neither a champion nor a previous-champion; nothing to roll back")
            restored = _restore_previous(reg, by, reason or "rollback with the champion alias missing")
            new_prev = reg.alias(PREVIOUS)
            return PromotionResult(restored.version, True, restored.version, new_prev.version if new_prev else None,
                                   "rolled-back", [], 0,
                                   f"no champion (its version was deleted?): previous-champion v{restored.version} "
                                   "is the champion again")
        if prev is None or prev.version == current.version:
            raise RegistryError(f"{reg.name!r} has no previous-champion to roll back to (champion is v{current.version})")
        new_prev = _crown_previous(reg, prev, exclude=current.version)
        reg.set_tags(current.version, {"rolled_back": "true", "rolled_back_by": by, "rolled_back_reason": reason})
        reg.set_tags(prev.version, {"restored_by": by})
    return PromotionResult(prev.version, True, prev.version, new_prev, "rolled-back", [], 0,
                           f"champion rolled back from v{current.version} to v{prev.version}")


def gate_and_promote(reg: Registry, version: int, pipeline_run_id: str, gates: GateConfig, *,
                     evaluator: Evaluator | None = None, model_card: bool = True,
                     decision: GateDecision | None = None) -> PromotionResult:
    """The pipeline's last step: decide, promote or reject, record, write the model card.

    One call, so that a trained version becomes ``champion`` only after passing the gates against
    the champion it replaces, and every decision is kept where a reader finds it: as version tags,
    as ``gate/decision.json`` in the version's run, and in its model card (docs/METHOD.md
    section 4).

    Steps: if ``version`` is already the champion (a retried task), return at once, recording
    nothing. Otherwise take ``decision``, or make one with ``decide``: the candidate against the
    current champion on the same evaluation key, the champion re-evaluated on the candidate's
    config when theirs differ (or refused, per ``gates.on_eval_mismatch``); with no champion, only
    the absolute checks run. A ``GateError`` or ``EvalMismatchError`` from ``decide`` tags the
    version ``gate.status=error`` (with ``gate.error``) and is raised; no alias moves. Then
    ``promote`` acts on the decision: a pass moves ``champion`` to ``version`` and the old champion
    to ``previous-champion`` under the registry lock, first deciding again (up to 3 times) if the
    champion changed since the decision; a rejection moves nothing. Either way the decision is recorded, and with ``model_card`` the
    card is logged to the version's run and the version's description set to the outcome and the
    decision's summary.

    Args:
        reg: the registered model.
        version: the registered version to gate.
        pipeline_run_id: who decides (the DAG run id); kept in the tags ``gate.decided_by`` and,
            on a pass, ``promoted_by``.
        gates: the resolved gate profile (``load_gates``), thresholds and gating dataset.
        evaluator: ``EvalConfig -> EvalResult``, used only to re-evaluate the champion on the
            candidate's config (default: ``xlir.evaluation.evaluate``).
        model_card: write the model card after promoting or rejecting.
        decision: a decision already made for ``version`` (the DAG's ``gate`` task); it is acted on
            as it is, and decided again only if the champion it was made against is no longer the
            champion (its reference then says so).

    Returns:
        A ``PromotionResult``: ``status`` ``passed``, ``rejected`` or ``already-champion``,
        ``promoted``, the ``champion`` and ``previous_champion`` versions afterwards, the names of
        the ``failed`` checks, ``rechecks``, a one-line ``message`` and the ``decision``
        (None when the version was already the champion on entry).

    Raises:
        GateError: a metric an enabled check needs is missing or not finite, the version was
            evaluated on another dataset than ``gates.dataset`` or at int8, or ``decision`` is about
            another version.
        EvalMismatchError: the evaluation configs differ and the profile refuses to re-evaluate,
            or the champion cannot be re-evaluated on the candidate's data version.
        RegistryError: no such version, the champion kept moving while promoting, or an alias
            read back wrong after a move.

    Example:
        ```python
        from xlir.registry import load_gates, open_registry
        from xlir.registry.promotion import gate_and_promote

        reg = open_registry("http://127.0.0.1:5000")          # registered model xlir-encoder
        result = gate_and_promote(reg, 2, "manual__2026-12-01", load_gates("default"))
        result.status, result.failed, result.champion         # e.g. ("rejected", ["retrieval.tolerance_mo"], 1)
        ```
    """
    if decision is not None and decision.candidate.get("version") not in (None, version):
        raise GateError(f"the decision given is about v{decision.candidate.get('version')}, not v{version}")
    current = reg.champion()
    if current is not None and current.version == version:  # a retry after the alias moved
        result = _already_champion(reg, current, pipeline_run_id, decision)
        if model_card and result.status == "passed" and not _has_artifact(reg, current.run_id, CARD_FILE):
            from xlir.registry.card import write_model_card

            log.warning("v%d is champion but its model card was never written (the promotion was interrupted); "
                        "writing it now", version)
            write_model_card(reg, version, result, reference_metrics=_reference_metrics_of(reg, result.decision))
        return result
    try:
        decision = decision or decide(reg, version, gates, evaluator=evaluator)
    except (GateError, EvalMismatchError) as e:  # visible in the UI; nothing moves
        reg.set_tags(version, {"gate.status": "error", "gate.error": str(e)[:4000], "gate.decided_by": pipeline_run_id})
        raise
    result = promote(reg, version, decision, pipeline_run_id, evaluator=evaluator)
    if model_card:
        from xlir.registry.card import write_model_card

        write_model_card(reg, version, result, reference_metrics=_reference_metrics_of(reg, result.decision))
    return result


def _reference_metrics_of(reg: Registry, decision: GateDecision | None) -> dict[str, float] | None:
    """Every metric of the champion a decision compared with, on the candidate's evaluation (its own
    run's, or its stored re-evaluation), for the comparison charts; None when unavailable."""
    ref = decision.reference if decision else {}
    if not ref.get("version"):
        return None
    try:
        champion = reg.version(ref["version"])
    except RegistryError:  # deleted since: the charts fall back on the decision's key metrics
        return None
    if ref.get("reevaluated"):
        return _stored_reevaluation(reg, champion, ref.get("eval_key"))
    return reg.version_metrics(champion)
