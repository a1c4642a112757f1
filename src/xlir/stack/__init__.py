"""The local stack: an MLflow server and Airflow (api-server, scheduler, dag-processor, triggerer)
as separate processes on 127.0.0.1, each started and stopped by its pid (``xlir stack ...``)."""

from xlir.stack.env import airflow_env

__all__ = ["airflow_env"]
