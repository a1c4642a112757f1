"""What the DAG files share: the validated-data asset, the default task arguments, every task's
``execution_timeout``, and the running task's DAG run id and params. Airflow is imported only inside
the functions that need it."""

from __future__ import annotations

import os
from datetime import timedelta

from xlir.errors import XlirError
from xlir.pipeline.params import VALIDATED_QA_NAME, VALIDATED_QA_URI

TIMEOUTS = {
    # kind: (environment variable, default seconds, what it bounds)
    "prepare": ("XLIR_PREPARE_TIMEOUT", 3600,
                "resolve the training data, run the data contract on its files, open the MLflow run"),
    "train": ("XLIR_TRAIN_TIMEOUT", 48 * 3600,
              "one fine-tuning (a long CPU run takes hours; a retry resumes from its checkpoint)"),
    "evaluate": ("XLIR_EVAL_TIMEOUT", 12 * 3600,
                 "evaluations: a variant on a dataset, the untuned reference, the baseline's at registration "
                 "(with its model upload), a champion's re-evaluation at the gate"),
    "promote": ("XLIR_PROMOTE_TIMEOUT", 480,
                "the gated alias move; strictly below the registry lock's lease (XLIR_REGISTRY_LOCK_LEASE, 600 s)"),
    "ingest": ("XLIR_INGEST_TIMEOUT", 4 * 3600, "validate and version every landing entry"),
    "short": ("XLIR_SHORT_TASK_TIMEOUT", 1800,
              "bookkeeping: lists to map over, the asset event, the comparison table, closing the MLflow run"),
}
"""Every task's time bound, by kind; each one configurable by its environment variable (seconds),
read when the DAG file is parsed."""

TASK_TIMEOUTS = {
    "xlir_train": {"prepare": "prepare", "train": "train", "eval_datasets": "short", "evaluate": "evaluate",
                   "register": "evaluate", "gate": "evaluate", "promote": "promote", "finish": "short"},
    "xlir_compare": {"prepare": "prepare", "variants": "short", "train": "train", "evaluate": "evaluate",
                     "reference": "evaluate", "compare": "short"},
    "xlir_ingest": {"ingest": "ingest", "publish": "short", "check": "short"},
}
"""The kind of every task of the three DAGs (a test checks each DAG task is here and has its timeout)."""


def timeout_seconds(kind: str) -> float:
    env, default, _ = TIMEOUTS[kind]
    raw = os.environ.get(env, "").strip()
    if not raw:
        return float(default)
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise XlirError(f"{env}={raw!r}: expected a positive number of seconds")
    return value


def task_timeout(dag_id: str, task_id: str) -> timedelta:
    """The ``execution_timeout`` of one task. The promotion's must stay strictly below the registry
    lock's lease, so no promotion can hold the lock past it: a DAG file with a longer one fails to parse."""
    try:
        kind = TASK_TIMEOUTS[dag_id][task_id]
    except KeyError:
        raise XlirError(f"no timeout for task {dag_id}.{task_id}: add it to xlir.pipeline.dag_support.TASK_TIMEOUTS") from None
    seconds = timeout_seconds(kind)
    if kind == "promote":
        from xlir.registry.lock import LEASE_ENV, lock_lease

        lease = lock_lease()
        if seconds >= lease:
            raise XlirError(f"{TIMEOUTS[kind][0]}={seconds:g} s must be below the registry lock's lease "
                            f"({LEASE_ENV}={lease:g} s): a promotion could outlive its lock")
    return timedelta(seconds=seconds)


MAX_ACTIVE_RUNS_ENV = "XLIR_TRAIN_MAX_ACTIVE_RUNS"


def max_active_runs() -> int:
    """How many ``xlir_train`` runs may be active at once (``$XLIR_TRAIN_MAX_ACTIVE_RUNS``, default 1).
    More than one suits a deployment with several workers: training and evaluation still run one at a
    time per training worker, and promotions one at a time in all (the ``xlir_promotion`` pool)."""
    raw = os.environ.get(MAX_ACTIVE_RUNS_ENV, "").strip() or "1"
    if not raw.isdigit() or int(raw) < 1:
        raise XlirError(f"{MAX_ACTIVE_RUNS_ENV}={raw!r}: expected a whole number of runs, at least 1")
    return int(raw)


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
