"""Airflow plugin: extra links from xlir task instances to MLflow.

* **MLflow run**: the task's MLflow run (``mlflow_run_id`` in its XCom return value: training,
  evaluation, registration, comparison tasks).
* **MLflow model version**: the registered version (``model_uri`` = ``models:/NAME/VERSION``:
  register, gate, promote tasks).
* **MLflow UI**: the tracking server's UI.

Base URL: ``XLIR_MLFLOW_UI_URL``, else ``MLFLOW_TRACKING_URI``. The links are computed on the API
server from the XCom the task returned; a task without those values shows them disabled.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import BaseOperatorLink


def _return_value(ti_key):
    """The task instance's XCom ``return_value`` (deserialised), or None."""
    try:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as s:
            row = (s.query(XComModel)
                   .filter_by(dag_id=ti_key.dag_id, run_id=ti_key.run_id, task_id=ti_key.task_id,
                              map_index=ti_key.map_index, key="return_value")
                   .first())
            return None if row is None else XComModel.deserialize_value(row)
    except Exception:  # noqa: BLE001 - a link must never break the UI
        return None


class MLflowRunLink(BaseOperatorLink):
    name = "MLflow run"

    def get_link(self, operator, *, ti_key) -> str:
        from xlir.pipeline.links import run_url

        return run_url(_return_value(ti_key))


class MLflowModelVersionLink(BaseOperatorLink):
    name = "MLflow model version"

    def get_link(self, operator, *, ti_key) -> str:
        from xlir.pipeline.links import model_version_url

        return model_version_url(_return_value(ti_key))


class MLflowUILink(BaseOperatorLink):
    name = "MLflow UI"

    def get_link(self, operator, *, ti_key) -> str:
        from xlir.pipeline.links import mlflow_ui_url

        return mlflow_ui_url()


class XlirMLflowLinksPlugin(AirflowPlugin):
    name = "xlir_mlflow_links"
    global_operator_extra_links = [MLflowRunLink(), MLflowModelVersionLink(), MLflowUILink()]
