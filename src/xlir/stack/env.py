"""The environment of an Airflow installation for xlir: one function, shared by the stack and the tests.

SQLite metadata DB under ``AIRFLOW_HOME``, LocalExecutor, low parallelism, no examples, the
repo's ``dags/`` and ``plugins/``, SimpleAuthManager with one admin user whose password lives in
a 0600 file, every listener (API server, log servers) on 127.0.0.1, and MLflow's client logged in as
the pipeline's own user (``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``: by environment,
never on a command line; ``xlir.stack.mlflow_auth``).

``celery_env``: what the CeleryExecutor adds (the local stack's ``XLIR_EXECUTOR=celery`` mode and
every Airflow service of docker-compose.yaml; tests/test_compose.py checks compose against it):
the broker, the result backend in Airflow's own database, the two queues, the broker's
visibility timeout above the longest task's time bound.
"""

from __future__ import annotations

import os
from pathlib import Path

from xlir.paths import REPO_ROOT

DAGS_FOLDER = REPO_ROOT / "dags"
PLUGINS_FOLDER = REPO_ROOT / "plugins"

ALERT_WEBHOOK_ENV = "XLIR_ALERT_WEBHOOK_URL"
DEPLOYMENT_ENV = {
    ALERT_WEBHOOK_ENV: "http(s) URL each gate decision (a promotion or a rejection) is posted to as JSON "
                       "(xlir.pipeline.alerts); empty: no alerts",
}
"""Settings only the deployment makes, handed to every Airflow process as the environment that starts
the local stack has them, and by docker-compose.yaml from ``.env``; empty means off."""


def airflow_env(home: str | Path, *, parallelism: int = 2, api_port: int = 8080, log_port: int = 8793,
                trigger_log_port: int = 8794, mlflow_uri: str | None = None, admin: str = "admin",
                passwords_file: str | Path | None = None, extra: dict[str, str] | None = None,
                sql_alchemy_conn: str | None = None, mlflow_username: str | None = None,
                mlflow_password: str | None = None) -> dict[str, str]:
    """The ``AIRFLOW__*`` (and xlir) variables of an isolated Airflow at ``home`` (metadata DB:
    ``sql_alchemy_conn``, default SQLite in ``home``)."""
    home = Path(home).resolve()
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS_FOLDER),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(parallelism),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{admin}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file or home / "passwords.json"),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql_alchemy_conn or f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_HOST": "127.0.0.1",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_port),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(trigger_log_port),
        "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "True",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "30",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__WEBSERVER__EXPOSE_CONFIG": "False",
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "NO_PROXY": "127.0.0.1,localhost",
        **{k: os.environ.get(k, "") for k in DEPLOYMENT_ENV},
    }
    if mlflow_uri:
        env["MLFLOW_TRACKING_URI"] = mlflow_uri
        env.setdefault("XLIR_MLFLOW_UI_URL", mlflow_uri)
    if mlflow_username and mlflow_password:
        env["MLFLOW_TRACKING_USERNAME"] = mlflow_username
        env["MLFLOW_TRACKING_PASSWORD"] = mlflow_password
    env.update(extra or {})
    return env


DEFAULT_QUEUE = "default"
TRAIN_QUEUE = "training"
"""The queues: train and evaluate go to ``TRAIN_QUEUE`` (``XLIR_TRAIN_QUEUE``: a worker of its own,
one task at a time, GPUs where there are), every other task to ``DEFAULT_QUEUE``."""


def visibility_timeout() -> int:
    """Seconds a task taken by a worker may stay unacknowledged before Redis hands it to another
    worker: one hour above the longest task time bound (``xlir.pipeline.dag_support.TIMEOUTS``), so a
    long training run is never delivered twice (Celery's default, 24 h, is below training's 48 h)."""
    from xlir.pipeline.dag_support import TIMEOUTS, timeout_seconds

    return int(max(timeout_seconds(kind) for kind in TIMEOUTS)) + 3600


def celery_env(broker_url: str, result_backend: str, *, worker_concurrency: int = 1) -> dict[str, str]:
    """The CeleryExecutor's variables: ``broker_url`` (Redis, password included: by environment only),
    ``result_backend`` (``db+postgresql...``: Airflow's metadata DB)."""
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": result_backend,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(worker_concurrency),
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": str(visibility_timeout()),
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": DEFAULT_QUEUE,
        "XLIR_TRAIN_QUEUE": TRAIN_QUEUE,
    }


def worker_hostname() -> str:
    """The hostname a Celery worker's tasks record (``AIRFLOW__CORE__HOSTNAME_CALLABLE`` of the local
    stack's workers): ``<XLIR_WORKER_NAME>@<host>``, the worker's Celery node name, so task-instance
    rows tell the workers of one machine apart; the plain host name without ``XLIR_WORKER_NAME``."""
    import socket

    name = os.environ.get("XLIR_WORKER_NAME", "").strip()
    return f"{name}@{socket.gethostname()}" if name else socket.gethostname()
