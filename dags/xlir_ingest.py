"""xlir_ingest: validate new landing files, version the valid ones, quarantine the rest.

Table of contents: ingest -> publish (asset event with the new data version) | check (fails
visibly with the validation summary when something was quarantined).
"""

from __future__ import annotations

import os

from airflow.sdk import dag, get_current_context, task

from xlir.pipeline.dag_support import default_args, validated_qa_asset

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

* **publish** emits the asset `xlir://validated-qa` (extra: `version`, `versions`), which
  schedules `xlir_train`; it is skipped when nothing new was ingested.
* **check** fails with the validation summary when anything was quarantined.

Schedule: `XLIR_INGEST_SCHEDULE` (cron, default every 15 minutes; `none` for on demand only).
""",
)
def xlir_ingest():
    @task(doc_md="Validate and ingest the landing folder (`xlir.pipeline.tasks.ingest_landing`); returns versions.")
    def ingest() -> dict:
        from xlir.pipeline.tasks import ingest_landing

        return ingest_landing()

    @task(outlets=[VALIDATED_QA], doc_md="Emit the `xlir://validated-qa` asset event for the new data version(s).")
    def publish(result: dict) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        if not result["ingested"]:
            raise AirflowSkipException("no new valid dataset in landing")
        extra = {"version": result["ingested"][-1], "versions": result["ingested"], "store": result["store"]}
        get_current_context()["outlet_events"][VALIDATED_QA].extra = extra
        return extra

    @task(retries=0, doc_md="Fail visibly, with the validation summary, when an entry was quarantined.")
    def check(result: dict) -> dict:
        from xlir.pipeline.tasks import check_ingest

        return check_ingest(result)

    result = ingest()
    publish(result)
    check(result)


xlir_ingest()
