"""The functions the DAG tasks call: one per task, keyed by the DAG run id, safe to retry.

Every function takes the run id (the MLflow pipeline-run key and the work folder's name) and
small values, does its work through the xlir packages, and returns a small JSON-ready dict
(ids, URIs, versions, a few numbers) for XCom. Nothing reads the clock: a retry of the same
run id reuses the same folders, reopens the same MLflow run (``track_pipeline_run``), resumes
training from its last checkpoint and finds the version it already registered.

Folders: ``$XLIR_PIPELINE_DIR`` (default ``<xlir cache>/pipeline``) / ``<run id>`` / ``train/<variant>``,
``eval/<variant>/<dataset>``; the ingest store, quarantine and landing folders come from
``XLIR_LANDING_DIR``, ``XLIR_STORE_DIR``, ``XLIR_QUARANTINE_DIR`` or the arguments.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from xlir.errors import XlirError
from xlir.pipeline.params import (
    DATA_ROOTS_ENV,
    DATA_VERSION_PATTERN,
    PIPELINE_VALIDATION_PRECISION,
    CompareParams,
    DeploymentPolicy,
    PipelineParams,
    PolicyError,
    check_promotion_policy,
    deployment_policy,
    is_path_spec,
    is_promoting,
)

GATING_DATASET = "xquad-r"


class IngestFailed(XlirError):
    """Some landing files failed validation and were quarantined (the message is the report summary)."""


# ------------------------------------------------------------------ folders


def pipeline_root() -> Path:
    from xlir.paths import cache_dir

    return Path(os.environ.get("XLIR_PIPELINE_DIR") or cache_dir() / "pipeline").expanduser()


def run_dir(run_id: str, root: str | Path | None = None) -> Path:
    """The work folder of one DAG run: a readable, filesystem-safe name plus a short hash of the id."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id)[:80]
    return Path(root or pipeline_root()) / f"{safe}-{hashlib.sha1(run_id.encode()).hexdigest()[:8]}"


def ingest_dirs(landing: str | None = None, store: str | None = None, quarantine: str | None = None) -> dict[str, str]:
    from xlir.validation.ingestion import default_quarantine, default_store

    return {
        "landing": str(Path(landing or os.environ.get("XLIR_LANDING_DIR") or pipeline_root() / "landing").expanduser()),
        "store": str(Path(store or os.environ.get("XLIR_STORE_DIR") or default_store()).expanduser()),
        "quarantine": str(Path(quarantine or os.environ.get("XLIR_QUARANTINE_DIR") or default_quarantine()).expanduser()),
    }


# ------------------------------------------------------------------ ingest


def ingest_landing(landing: str | None = None, store: str | None = None, quarantine: str | None = None) -> dict:
    """Validate and ingest every new landing entry; returns versions, quarantined entries and the summary.

    Safe to repeat: the ingest ledger recognises content already processed.
    """
    from xlir.validation.ingestion import ingest

    dirs = ingest_dirs(landing, store, quarantine)
    Path(dirs["landing"]).mkdir(parents=True, exist_ok=True)
    result = ingest(dirs["landing"], store=dirs["store"], quarantine=dirs["quarantine"])
    return {
        **dirs,
        "ingested": [d.version for d in result.ingested],
        "quarantined": [{"version": q.version, "report": q.report, "failed_checks": q.failed_checks}
                        for q in result.quarantined],
        "skipped": len(result.skipped),
        "errors": len(result.errors),
        "summary": result.summary(),
    }


def asset_extra(result: dict, dag_run_id: str | None = None) -> dict:
    """The extra of the asset event that announces ``result``'s new versions (``ingest_landing``'s return):
    the versions, the store, and each version's ingest MLflow run (``record_ingest``: id and UI link;
    none when no tracking server is configured), so the event points at MLflow."""
    from xlir.pipeline.lineage import record_ingest
    from xlir.pipeline.links import run_url

    versions = list(result["ingested"])
    runs = record_ingest({v: Path(ingested_questions_path(v, result.get("store"))).parent for v in versions},
                         dag_run_id=dag_run_id)
    extra = {"version": versions[-1], "versions": versions, "store": result["store"]}
    if runs:
        extra["mlflow_run_ids"] = runs
        extra["mlflow_run_urls"] = {v: url for v, r in runs.items() if (url := run_url({"mlflow_run_id": r}))}
    return extra


def check_ingest(result: dict) -> dict:
    """Raise ``IngestFailed`` with the summary when anything was quarantined or left in landing by an error."""
    if result.get("quarantined") or result.get("errors"):
        raise IngestFailed(
            f"{len(result.get('quarantined', []))} landing entr(y/ies) failed validation and were quarantined "
            f"under {result.get('quarantine')}; {result.get('errors', 0)} left in landing after an I/O error.\n"
            f"{result.get('summary', '')}"
        )
    return {"ingested": result.get("ingested", [])}


def ingested_questions_path(version: str, store: str | None = None) -> str:
    """The questions of a validated version in the ingest store. ``version`` must be a store version
    (``DATA_VERSION_PATTERN``: never a path), its folder a real one inside the store, and its manifest
    must say that the version passed the data contract."""
    if not isinstance(version, str) or not re.fullmatch(DATA_VERSION_PATTERN, version):
        raise PolicyError(f"data version {str(version)[:100]!r} is not a store version (16 to 64 lowercase hex "
                          "digits, as xlir_ingest names them); refused before training")
    from xlir.validation.ingestion import read_manifest

    root = Path(ingest_dirs(store=store)["store"])
    folder = root / version
    path = folder / "questions.parquet"
    if not path.is_file():
        raise XlirError(f"no ingested data version {version!r} in {root} (run the xlir_ingest DAG first)")
    if folder.is_symlink() or path.is_symlink() or folder.resolve().parent != root.resolve():
        raise PolicyError(f"ingested data version {version!r} in {root} is a link, not a folder the ingest wrote; refused")
    manifest = read_manifest(folder)
    if manifest is None:
        raise PolicyError(f"ingested data version {version!r} has no readable manifest ({folder / 'manifest.json'}); "
                          "refused")
    if manifest.get("version") != version or (manifest.get("validation") or {}).get("passed") is not True:
        raise PolicyError(f"ingested data version {version!r} did not pass the data contract (its manifest says "
                          f"version {manifest.get('version')!r}, passed {(manifest.get('validation') or {}).get('passed')!r}); "
                          "refused")
    return str(path)


def check_training_sources(specs: list[str], params: PipelineParams, policy: DeploymentPolicy) -> dict[str, str]:
    """What a DAG run may train on, checked before any training: named datasets (pinned by checksum;
    a promoting run not on a test set), and files under ``$XLIR_DATA_ROOTS`` or named by the
    deployment's own defaults, each run through the data contract here. Returns ``{spec: "named" |
    validation summary}``; raises ``PolicyError`` naming every refused source."""
    from xlir.data.registry import dataset_names
    from xlir.training.selection import is_test_source

    known, bad, files, out = set(dataset_names()), [], [], {}
    roots = [Path(r) for r in policy.data_roots]
    for spec in specs:
        if not is_path_spec(spec) and spec.partition(":")[0] in known:
            if Path(spec).exists():
                bad.append(f"{spec!r}: names a dataset, but a file of that name exists in {Path.cwd()} and would be "
                           "read instead")
            elif is_promoting(params) and is_test_source(spec):
                bad.append(f"{spec!r}: a test set (the gates evaluate on it); a promoting run may not train on it")
            else:
                out[spec] = "named"
            continue
        path = Path(spec).expanduser()
        if not path.is_absolute():
            bad.append(f"{spec!r}: neither a named dataset ({', '.join(sorted(known))}) nor an absolute path")
            continue
        real = path.resolve()
        allowed = str(real) in policy.default_train_paths or any(real.is_relative_to(r) for r in roots)
        if not allowed:
            where = (f"{DATA_ROOTS_ENV} ({':'.join(policy.data_roots)})" if roots else
                     f"{DATA_ROOTS_ENV}, which is not set")
            bad.append(f"{spec!r}: not under a data root of {where}; land it through xlir_ingest, or have the "
                       "deployment add its folder")
        elif not real.is_file():
            bad.append(f"{spec!r}: no such file")
        else:
            files.append(spec)
    if not bad:
        from xlir.validation import validate_files

        for spec in files:
            report = validate_files([spec])
            if not report.passed:
                bad.append(f"{spec!r}: fails the data contract: {report.summary(max_examples=1)}")
            else:
                out[spec] = report.summary()
    if bad:
        raise PolicyError("refused before training: the run names training data that it may not use:\n  - "
                          + "\n  - ".join(bad))
    return out


# ------------------------------------------------------------------ training pipeline


def _params(params: dict | PipelineParams, model=PipelineParams) -> PipelineParams:
    if isinstance(params, PipelineParams):
        return params
    from xlir.pipeline.params import parse_params

    return parse_params(params, model)


def triggering_data_versions(events) -> list[str]:
    """The ingested data versions named by the asset events that triggered a run (Airflow's
    ``triggering_asset_events``: asset -> events with ``extra``), oldest first, each once."""
    from xlir.pipeline.lineage import asset_events_by_version

    return list(asset_events_by_version(events))


def prepare_training_data(run_id: str, params: dict | PipelineParams, data_versions: list[str] | None = None,
                          asset_events: dict[str, dict] | None = None) -> dict:
    """Resolve the training sources (named datasets, files, the ingested versions: those of the
    triggering asset events, else the ``data_version`` param), check they load, and open the DAG
    run's MLflow run with the run's params and the training data as dataset inputs with its lineage
    (``xlir.pipeline.lineage.log_training_data``; ``asset_events``: ``asset_events_by_version`` of the
    triggering events, whose versions are the ingested ones). Returns the source specs and versions.

    First, before anything is loaded or logged, what only the deployment decides is checked (a
    ``PolicyError`` refuses the run): a promoting run's gates and gating evaluation
    (``check_promotion_policy``), the ingested versions (store versions that passed the data
    contract), and every other source (``check_training_sources``: named datasets, or files under
    ``$XLIR_DATA_ROOTS`` that pass the data contract here)."""
    from xlir.pipeline.lineage import log_training_data
    from xlir.registry import track_pipeline_run
    from xlir.training.data import load_source

    p = _params(params)
    policy = deployment_policy()
    check_promotion_policy(p, policy)
    if asset_events:
        data_versions = list(asset_events)
    versions_asked = list(data_versions or ([p.data_version] if p.data_version else []))
    paths = {v: ingested_questions_path(v) for v in versions_asked}  # each checked: format, store, validation
    checked = check_training_sources(list(p.train_datasets), p, policy)
    specs = list(p.train_datasets)
    skipped = []
    for version in versions_asked:
        path = paths[version]
        already = _named_dataset_holding(version, specs)
        if already:
            skipped.append({"version": version, "already_in": already})
        elif path not in specs:
            specs.append(path)
    versions = {spec: load_source(spec).version for spec in specs}
    with track_pipeline_run(run_id, experiment=p.experiment, finish=False) as run:
        run.log_params(p.model_dump(mode="json", exclude={"gate_overrides"}), "pipeline.")
        if p.gate_overrides:
            run.log_params({"pipeline.gate_overrides": json.dumps(p.gate_overrides, sort_keys=True)})
        run.log_params({f"data.version.{k}": v for k, v in versions.items()})
        log_training_data(run, versions, {v: Path(paths[v]).parent for v in versions_asked},
                          {s["version"]: s["already_in"] for s in skipped}, asset_events)
        mlflow_run_id = run.run_id
    return {"train_datasets": specs, "data_versions": versions, "mlflow_run_id": mlflow_run_id,
            "skipped_data_versions": skipped, "checked_sources": checked}


def _named_dataset_holding(version: str, specs: list[str]) -> str | None:
    """The named training dataset whose pinned files are exactly the ingested version's files (so
    landing a copy of MLQA-R does not train on it twice), else None."""
    from xlir.data.registry import files_for
    from xlir.validation.ingestion import read_manifest

    manifest = read_manifest(Path(ingested_questions_path(version)).parent) or {}
    hashes = {src["sha256"] for src in manifest.get("sources", [])}
    for spec in specs:
        if "/" in spec or Path(spec).suffix:
            continue
        try:
            pinned = set(files_for(spec.partition(":")[0]).values())
        except Exception:  # noqa: BLE001 - not a named dataset with pinned files
            continue
        if hashes and hashes <= pinned:
            return spec
    return None


def variant_name(strategy: str, alpha: float) -> str:
    return f"hybrid-a{alpha:g}" if strategy == "hybrid" else strategy


def train_model(run_id: str, params: dict | PipelineParams, train_datasets: list[str],
                strategy: str | None = None, alpha: float | None = None) -> dict:
    """Fine-tune one variant (default: the params' strategy and alpha) in the run's folder; a retry
    resumes from the last checkpoint (same folder) and a finished run returns its saved result.
    Logged to a child MLflow run named after the variant."""
    from xlir.registry import track_pipeline_run
    from xlir.training import train

    p = _params(params)
    strategy = strategy or p.strategy
    alpha = p.alpha if alpha is None else float(alpha)
    name = variant_name(strategy, alpha)
    cfg = p.train_config(train_datasets=train_datasets, strategy=strategy, alpha=alpha,
                         validation_precision=validation_precision_of(p), output_dir=run_dir(run_id) / "train" / name)
    result = train(cfg)
    with track_pipeline_run(run_id, experiment=p.experiment, finish=False) as run:
        with run.child(name, finish=False) as child:
            child.log_training(result)
            child.copy_datasets(run)  # the registered version's run shows its training data too
            child_id = child.run_id
        parent_id = run.run_id
    return {"variant": name, "strategy": strategy, "alpha": alpha, "model_dir": result.model_dir,
            "mlflow_run_id": child_id, "parent_run_id": parent_id, "steps": result.steps,
            "final_loss": result.final_loss, "selected_step": result.selected_step,
            "merge_lambda": result.merge_lambda}


def precision_of(params: PipelineParams) -> str:
    """A comparison may use a fast path (bf16, int8); a training run's evaluations are gated, so always fp32."""
    return getattr(params, "precision", "fp32")


def validation_precision_of(params: PipelineParams) -> str:
    """A comparison validates at its own precision; a training run at ``PIPELINE_VALIDATION_PRECISION``."""
    return getattr(params, "precision", PIPELINE_VALIDATION_PRECISION)


def eval_config(params: dict | PipelineParams, dataset: str, model: str, output_dir: str | Path | None = None):
    """The evaluation config of a run (the champion is compared on the same one)."""
    p = _params(params)
    return p.eval_config(model=model, dataset=dataset, precision=precision_of(p), output_dir=output_dir)


def evaluate_model(run_id: str, trained: dict, dataset: str, params: dict | PipelineParams) -> dict:
    """Evaluate one trained variant on one dataset, log it to the variant's child run; returns the
    results folder and a few key metrics (the full set stays in ``metrics.json`` and MLflow)."""
    from xlir.evaluation import evaluate
    from xlir.evaluation.run import metric_prefix
    from xlir.registry import track_pipeline_run

    p = _params(params)
    out = run_dir(run_id) / "eval" / trained["variant"] / dataset.replace(":", "_")
    result = evaluate(eval_config(p, dataset, trained["model_dir"], out))
    with track_pipeline_run(run_id, experiment=p.experiment, finish=False) as run:
        with run.child(trained["variant"], finish=False) as child:
            child.log_evaluation(result)
            child_id = child.run_id
    prefix = metric_prefix(dataset)
    key = {k: v for k, v in result.metrics.items()
           if k in {f"{prefix}.map.mo", f"{prefix}.map.cr", f"{prefix}.map.mul", f"{prefix}.rank_distance", f"{prefix}.map"}}
    return {"variant": trained["variant"], "dataset": dataset, "output_dir": str(result.output_dir),
            "mlflow_run_id": child_id, "metrics": key}


def _read_eval(output_dir: str) -> tuple[dict, dict]:
    data = json.loads((Path(output_dir) / "metrics.json").read_text())
    return data["metrics"], data["info"]


def log_and_register(run_id: str, params: dict | PipelineParams, trained: dict, evaluations: list[dict]) -> dict:
    """Make sure a champion exists (the untuned base model, evaluated once on the same config), then
    register the trained model with the gating evaluation's metrics. Idempotent per run id."""
    from xlir.registry import ensure_baseline, register_model

    p = _params(params)
    gating = [e for e in evaluations if e["dataset"] == GATING_DATASET and e["variant"] == trained["variant"]]
    if not gating:
        raise XlirError(f"the gates need an evaluation on {GATING_DATASET}; eval_datasets was {p.eval_datasets}")
    metrics, info = _read_eval(gating[0]["output_dir"])
    cfg = eval_config(p, GATING_DATASET, trained["model_dir"])
    others = tuple(eval_config(p, d, p.base_model) for d in p.eval_datasets if d != GATING_DATASET)
    champion = ensure_baseline(p.base_model, eval_config(p, GATING_DATASET, p.base_model), name=p.registered_model,
                               also_evaluate=others, experiment=p.experiment)
    version = register_model(trained["model_dir"], trained["mlflow_run_id"], run_id, metrics, cfg,
                             name=p.registered_model, dataset_version=info.get("dataset_version"))
    return {"version": version, "model_uri": f"models:/{p.registered_model}/{version}",
            "registered_model": p.registered_model, "champion_before": champion,
            "mlflow_run_id": trained["mlflow_run_id"]}


def gate(run_id: str, params: dict | PipelineParams, registered: dict) -> dict:
    """The gate decision for the registered version against the current champion (records nothing);
    ``promote`` acts on it (its ``decision``) instead of deciding again."""
    from xlir.registry import decide

    p = _params(params)
    d = decide(registered["version"], p.gate_profile, overrides=p.gate_overrides or None, name=p.registered_model)
    return {"version": registered["version"], "passed": d.passed, "failed": d.failed, "summary": d.summary(),
            "model_uri": registered["model_uri"], "decision": d.model_dump(mode="json")}


def promote(run_id: str, params: dict | PipelineParams, registered: dict, gated: dict | None = None) -> dict:
    """Act on the ``gate`` task's decision (``gated``: its return value): on a pass with ``promote`` on,
    move ``champion`` under the registry lock (the gates run again only if the champion changed since
    the decision), on a fail tag the version rejected and move nothing. Without ``gated`` it decides
    here. Returns ``PromotionResult.as_dict()`` without the decision, plus its headline deltas."""
    from xlir.pipeline.alerts import headline_deltas
    from xlir.registry import GateDecision, gate_and_promote

    p = _params(params)
    if not p.promote:
        return {"version": registered["version"], "promoted": False, "status": "not-requested",
                "model_uri": registered["model_uri"]}
    check_promotion_policy(p)  # checked before training too; the deployment's policy may have changed since
    decision = GateDecision.model_validate(gated["decision"]) if gated and gated.get("decision") else None
    result = gate_and_promote(registered["version"], run_id, p.gate_profile, overrides=p.gate_overrides or None,
                              name=p.registered_model, decision=decision).as_dict()
    headline = headline_deltas(result.pop("decision", None))  # a few numbers for the alert (xlir.pipeline.notifier)
    return {**result, "headline": headline, "model_uri": f"models:/{p.registered_model}/{result['version']}",
            "registered_model": p.registered_model, "mlflow_run_id": registered.get("mlflow_run_id")}


def finish_run(run_id: str, params: dict | PipelineParams, summary: dict | None = None) -> dict:
    """Close the DAG run's MLflow run (FINISHED) with a small summary artifact."""
    from xlir.registry import track_pipeline_run

    p = _params(params)
    with track_pipeline_run(run_id, experiment=p.experiment) as run:
        if summary:
            run.log_dict(summary, "pipeline/summary.json")
        _finish_children(run)
        return {"mlflow_run_id": run.run_id}


def _finish_children(run) -> int:
    """Mark the pipeline run's child runs (left open by the train/evaluate tasks) FINISHED."""
    from xlir.registry.tracking import TAG_KIND, TAG_PIPELINE

    flt = f"tags.`{TAG_PIPELINE}` = '{run.pipeline_run_id}' and tags.`{TAG_KIND}` = 'child'"
    children = run.client.search_runs([run.experiment_id], filter_string=flt, max_results=1000)
    n = 0
    for c in children:
        if c.info.status == "RUNNING":
            run.client.set_terminated(c.info.run_id, status="FINISHED")
            n += 1
    return n


# ------------------------------------------------------------------ strategy comparison


def compare_variants(params: dict | CompareParams) -> list[dict]:
    """The variants of a comparison: each strategy (hybrid at the params' alpha) plus hybrid at each extra alpha."""
    p = _params(params, CompareParams)
    out, seen = [], set()
    for s in p.strategies:
        v = {"strategy": s, "alpha": p.alpha}
        if variant_name(s, p.alpha) not in seen:
            seen.add(variant_name(s, p.alpha))
            out.append(v)
    for a in p.alphas:
        if variant_name("hybrid", a) not in seen:
            seen.add(variant_name("hybrid", a))
            out.append({"strategy": "hybrid", "alpha": float(a)})
    return out


UNTUNED = "untuned"


def evaluate_reference(run_id: str, params: dict | CompareParams) -> list[dict]:
    """The untuned base encoder on every evaluation dataset: the one reference all variants of a
    comparison share (its embeddings come from the cache when any earlier run encoded them)."""
    p = _params(params, CompareParams)
    reference = {"variant": UNTUNED, "model_dir": p.base_model}
    return [evaluate_model(run_id, reference, d, p) for d in p.eval_datasets]


def compare_strategies(run_id: str, params: dict | CompareParams, evaluations: list[dict]) -> dict:
    """A markdown table and a PNG bar chart of the variants' key metrics, logged to the parent run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from xlir.evaluation.run import metric_prefix
    from xlir.registry import track_pipeline_run

    p = _params(params, CompareParams)
    out = run_dir(run_id) / "compare"
    out.mkdir(parents=True, exist_ok=True)
    cols = ["map.mo", "map.cr", "map.mul", "rank_distance"]
    order = lambda e: (e["variant"] != UNTUNED, e["variant"])  # noqa: E731 - the reference row first
    label = "" if precision_of(p) == "fp32" else f" ({precision_of(p)} fast path: not comparable with fp32 numbers)"
    lines = []
    for dataset in sorted({e["dataset"] for e in evaluations}):
        prefix = metric_prefix(dataset)
        rows = sorted((e for e in evaluations if e["dataset"] == dataset), key=order)
        lines += [f"### {dataset}{label}", "", "| variant | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for e in rows:
            vals = [e["metrics"].get(f"{prefix}.{c}") for c in cols]
            lines.append(f"| {e['variant']} | " + " | ".join("-" if v is None else f"{v:.4f}" for v in vals) + " |")
        lines.append("")
    table = "\n".join(lines)
    (out / "comparison.md").write_text(table)

    datasets = sorted({e["dataset"] for e in evaluations})
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        prefix = metric_prefix(dataset)
        rows = sorted((e for e in evaluations if e["dataset"] == dataset), key=order)
        width = 0.8 / 3
        for i, c in enumerate(cols[:3]):
            ax.bar([j + i * width for j in range(len(rows))], [e["metrics"].get(f"{prefix}.{c}", 0.0) for e in rows],
                   width, label=c)
        ax.set_xticks([j + width for j in range(len(rows))], [e["variant"] for e in rows])
        ax.set_title(f"{dataset}: mAP by batch strategy{' (int8)' if label else ''}")
        ax.set_ylim(0, 1)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "comparison.png", dpi=100)
    plt.close(fig)
    with track_pipeline_run(run_id, experiment=p.experiment) as run:
        run.log_artifact(out / "comparison.md", "comparison")
        run.log_artifact(out / "comparison.png", "comparison")
        _finish_children(run)
        parent = run.run_id
    return {"mlflow_run_id": parent, "table": str(out / "comparison.md"), "chart": str(out / "comparison.png"),
            "variants": sorted({e["variant"] for e in evaluations})}


__all__ = [
    "IngestFailed", "UNTUNED", "asset_extra", "check_ingest", "check_training_sources", "compare_strategies", "compare_variants",
    "eval_config", "evaluate_model", "evaluate_reference", "ingested_questions_path",
    "finish_run", "gate", "ingest_landing", "log_and_register", "pipeline_root", "prepare_training_data",
    "promote", "run_dir", "train_model", "triggering_data_versions",
]
