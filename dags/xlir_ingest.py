"""xlir_ingest: validate new landing files, version the valid ones, quarantine the rest.

Table of contents: ingest -> publish (asset event with the new data version) | check (fails
visibly with the validation summary when something was quarantined or an entry failed).

Settings come from the environment of the worker running the task: the folders
(``XLIR_LANDING_DIR``, ``XLIR_STORE_DIR``, ``XLIR_QUARANTINE_DIR``) and the quiet period
(``XLIR_INGEST_QUIET_SECONDS``, read by ``xlir.validation.ingestion.ingest``).
"""

from __future__ import annotations

import os

from airflow.sdk import dag, get_current_context, task

from xlir.pipeline.dag_support import default_args, task_timeout, validated_qa_asset

VALIDATED_QA = validated_qa_asset()
_schedule = os.environ.get("XLIR_INGEST_SCHEDULE", "*/15 * * * *").strip()
SCHEDULE = None if _schedule.lower() in ("", "none", "off", "manual") else _schedule


@dag(
    dag_id="xlir_ingest",
    schedule=SCHEDULE,
    catchup=False,
    max_active_runs=1,
    tags=["xlir", "data", "ingest"],
    default_args=default_args(retries=1),
    doc_md="""
### xlir_ingest
Validates every new file or folder in the landing folder (`XLIR_LANDING_DIR`) against the data
contract (`xlir.validation`), stores valid ones as versioned Parquet (`XLIR_STORE_DIR`) and moves
invalid ones to quarantine (`XLIR_QUARANTINE_DIR`) with a report and Data Docs.

* **publish** records each new version in MLflow when a tracking server is configured (run
  `ingest <version>`: the version as a dataset input, its validation report) and emits the asset
  `xlir://validated-qa` (extra: `version`, `versions`, `store`, `mlflow_run_ids`, `mlflow_run_urls`),
  which schedules `xlir_train`; it is skipped when nothing new was ingested. `versions` also holds
  any version an earlier run stored but never announced (a crash, a failed archive move).
* **check** fails with the validation summary when anything was quarantined or an entry failed
  on its own (each landing entry succeeds or fails alone; the others are ingested either way).

An entry is taken once its files have been unchanged for `XLIR_INGEST_QUIET_SECONDS` (default
30; a file still being copied waits for a later run), or at once with a ready marker
(`NAME.done` beside it, `_SUCCESS` inside a folder). Symbolic links are never followed nor
ingested; they are reported and left in place.

Schedule: `XLIR_INGEST_SCHEDULE` (cron, default every 15 minutes; `none` for on demand only).
""",
)
def xlir_ingest():
    @task(execution_timeout=task_timeout("xlir_ingest", "ingest"),
          doc_md="Validate and ingest the landing folder (`xlir.pipeline.tasks.ingest_landing`); returns versions.")
    def ingest() -> dict:
        from xlir.pipeline.tasks import ingest_landing

        return ingest_landing()

    @task(execution_timeout=task_timeout("xlir_ingest", "publish"),
          outlets=[VALIDATED_QA], doc_md="Emit the `xlir://validated-qa` asset event for the new data version(s).")
    def publish(result: dict) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from xlir.pipeline.tasks import asset_extra

        if not result["ingested"]:
            raise AirflowSkipException("no new valid dataset in landing")
        ctx = get_current_context()
        extra = asset_extra(result, ctx["run_id"])
        ctx["outlet_events"][VALIDATED_QA].extra = extra
        return extra

    @task(execution_timeout=task_timeout("xlir_ingest", "check"),
          retries=0, doc_md="Fail visibly, with the validation summary, when an entry was quarantined.")
    def check(result: dict) -> dict:
        from xlir.pipeline.tasks import check_ingest

        return check_ingest(result)

    result = ingest()
    publish(result)
    check(result)


xlir_ingest()
