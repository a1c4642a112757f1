"""Lineage from a landed file to a registered model, kept where users look: MLflow and Airflow.

- ``record_ingest`` (the ingest DAG's ``publish`` task): each newly stored data version gets an MLflow
  run of its own (``ingest <version>``: the version as a dataset input whose digest is the version,
  its ``validation.json`` and ``manifest.json`` as artifacts); its run id goes into the asset event's
  extra, so the asset event points at MLflow.
- ``log_training_data`` (the training DAG's ``prepare`` task): every training source is a dataset
  input of the pipeline run (an ingested version with its version as digest, its store folder as
  source, its validation result as profile), even a version whose content equals a named dataset
  (trained on once); the ingest's landed files, validation report and asset event are run tags
  (``data.ingest.*``, read by the model card) and the validation reports are artifacts; the ingest
  run gets a tag naming the training run, so the two MLflow runs point at each other.

Nothing here needs Airflow; the asset events come in as plain objects with ``extra``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

INGEST_RUN_KIND = "ingest"
INGEST_CONTEXT = "ingest"
MAX_FILES = 20
"""Landed file names kept per version in a run tag (a folder of many files is summarised)."""


def ingest_run_key(version: str) -> str:
    """The MLflow pipeline-run key of a data version's ingest run."""
    return f"ingest-{version}"


def ingest_record(version: str, folder: str | Path) -> dict:
    """What the store knows about a validated version (its ``folder``, checked by the caller with
    ``xlir.pipeline.tasks.ingested_questions_path``): landed files, rows, validation result and report."""
    from xlir.validation.ingestion import read_manifest

    folder = Path(folder)
    manifest = read_manifest(folder) or {}
    files = [s["name"] for s in manifest.get("sources", [])]
    validation = manifest.get("validation") or {}
    return {
        "version": version,
        "name": manifest.get("name"),
        "files": files[:MAX_FILES] + ([f"... {len(files) - MAX_FILES} more"] if len(files) > MAX_FILES else []),
        "rows": (manifest.get("rows") or {}).get("questions"),
        "passed": validation.get("passed") is True,
        "suite_version": validation.get("suite_version"),
        "report": str(folder / "validation.json"),
        "folder": str(folder),
        "content_sha256": manifest.get("content_sha256"),
    }


def _log_version(run, record: dict, context: str) -> str:
    """One ingested version on ``run``: dataset input, and its validation report and manifest as artifacts."""
    version = record["version"]
    run.log_dataset(f"ingested:{record['name']}", version, record["folder"], context=context,
                    profile={k: record[k] for k in ("rows", "files", "passed", "suite_version", "report")},
                    tags={"xlir.validation.report": record["report"]})
    artifact_dir = f"validation/{version}"
    for name in ("validation.json", "manifest.json"):
        run.log_artifact(Path(record["folder"]) / name, artifact_dir)
    return f"{artifact_dir}/validation.json"


def record_ingest(versions: dict[str, Path], *, dag_run_id: str | None = None) -> dict[str, str]:
    """An MLflow run per newly ingested version (``{version: store folder}``; reopened on a retry);
    ``{version: MLflow run id}``.
    Nothing, and ``{}``, when no tracking server is configured (``MLFLOW_TRACKING_URI`` unset)."""
    if not versions or not (os.environ.get("MLFLOW_TRACKING_URI") or "").strip():
        return {}
    from xlir.pipeline.params import configured_defaults
    from xlir.registry import track_pipeline_run
    from xlir.registry.tracking import TAG_KIND

    experiment = configured_defaults().experiment
    out = {}
    for version, folder in versions.items():
        record = ingest_record(version, folder)
        with track_pipeline_run(ingest_run_key(version), experiment=experiment, run_name=f"ingest {version}",
                                tags={TAG_KIND: INGEST_RUN_KIND}) as run:
            _log_version(run, record, INGEST_CONTEXT)
            run.set_tags({"data.version": version, "data.files": record["files"],
                          "data.validation.passed": str(record["passed"]).lower(),
                          **({"airflow.dag_run_id": dag_run_id} if dag_run_id else {})})
            out[version] = run.run_id
    return out


def asset_events_by_version(events) -> dict[str, dict]:
    """Per data version, the asset event that announced it (Airflow's ``triggering_asset_events``):
    its source DAG and run, time, and the ingest's MLflow run id from its extra. Small: an XCom value."""
    out: dict[str, dict] = {}
    for evs in (events or {}).values():
        for e in sorted(evs, key=lambda e: str(getattr(e, "timestamp", "") or "")):
            extra = getattr(e, "extra", None) or {}
            for v in extra.get("versions") or [extra.get("version")]:
                if v and str(v) not in out:
                    out[str(v)] = {
                        "source_dag_id": getattr(e, "source_dag_id", None), "source_run_id": getattr(e, "source_run_id", None),
                        "timestamp": str(getattr(e, "timestamp", "") or ""),
                        "mlflow_run_id": (extra.get("mlflow_run_ids") or {}).get(str(v)),
                    }
    return out


def log_training_data(run, sources: dict[str, str], ingested: dict[str, Path], same_as: dict[str, str],
                      events: dict[str, dict] | None = None) -> None:
    """The training data of pipeline run ``run``: every source (``{spec: version}``) and every ingested
    version (``{version: store folder}``; ``same_as``: version -> the named dataset whose content it is)
    as dataset inputs, the ingest lineage as ``data.ingest.*`` tags, and each ingest run tagged with this run."""
    from xlir.registry.card import INGEST_TAG

    folders = {str(Path(f)) for f in ingested.values()}
    for spec, version in sources.items():
        if str(Path(spec).parent) not in folders:
            run.log_dataset(spec, version, spec, context="training")
    tags = {}
    for version, folder in ingested.items():
        record = ingest_record(version, folder)
        artifact = _log_version(run, record, "training")
        event = (events or {}).get(version) or {}
        ingest_run = event.get("mlflow_run_id") or _find_ingest_run(run, version)
        tags[f"{INGEST_TAG}.{version}"] = json.dumps({
            **{k: record[k] for k in ("files", "rows", "passed", "report")}, "artifact": artifact,
            "same_as": same_as.get(version), "asset_event": event or None, "mlflow_run_id": ingest_run,
        }, sort_keys=True)
        if ingest_run:
            _point_back(run, ingest_run)
    if ingested:
        tags[f"{INGEST_TAG}.versions"] = json.dumps(list(ingested))
        tags["data.validation.passed"] = "true"  # the store holds only versions that passed (checked on reading)
        run.set_tags(tags)


def _find_ingest_run(run, version: str) -> str | None:
    """The ingest MLflow run of ``version`` in the deployment's experiment, when the version came without
    an asset event (the ``data_version`` param)."""
    from xlir.pipeline.params import configured_defaults
    from xlir.registry.tracking import TAG_KIND, TAG_PIPELINE

    exp = run.client.get_experiment_by_name(configured_defaults().experiment)
    if exp is None:
        return None
    found = run.client.search_runs([exp.experiment_id], max_results=1, filter_string=(
        f"tags.`{TAG_PIPELINE}` = '{ingest_run_key(version)}' and tags.`{TAG_KIND}` = '{INGEST_RUN_KIND}'"))
    return found[0].info.run_id if found else None


def _point_back(run, ingest_run_id: str) -> None:
    try:
        run.client.set_tag(ingest_run_id, f"xlir.trained_in.{run.run_id}", run.pipeline_run_id)
    except Exception as e:  # noqa: BLE001 - the training run names the ingest run either way
        log.warning("could not tag ingest run %s with training run %s: %s", ingest_run_id, run.run_id, e)


__all__ = ["asset_events_by_version", "ingest_record", "ingest_run_key", "log_training_data", "record_ingest"]
