"""What the DAG files share: the validated-data asset, the default task arguments, and the running
task's DAG run id and params. Airflow is imported only inside the functions that need it."""

from __future__ import annotations

from datetime import timedelta

from xlir.pipeline.params import VALIDATED_QA_NAME, VALIDATED_QA_URI


def validated_qa_asset():
    """The asset ``xlir_ingest`` updates and ``xlir_train`` is scheduled on."""
    from airflow.sdk import Asset

    return Asset(name=VALIDATED_QA_NAME, uri=VALIDATED_QA_URI)


def default_args(retries: int = 2) -> dict:
    return {"owner": "xlir", "retries": retries, "retry_delay": timedelta(seconds=30)}


def current_run() -> tuple[str, dict]:
    """The running task's DAG run id and params."""
    from airflow.sdk import get_current_context

    ctx = get_current_context()
    return ctx["run_id"], dict(ctx["params"])
