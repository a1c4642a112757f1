"""MLflow links for a task instance, from its (small) XCom return value: pure, tested without Airflow.

Used by the Airflow plugin ``plugins/xlir_mlflow_links.py`` (operator extra links). The MLflow UI
base URL is ``XLIR_MLFLOW_UI_URL``, else ``MLFLOW_TRACKING_URI`` when that is an http(s) URL.
"""

from __future__ import annotations

import os
import re
from urllib.parse import quote

_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")


def mlflow_ui_url() -> str:
    """The MLflow UI base URL, or '' when none is configured."""
    for var in ("XLIR_MLFLOW_UI_URL", "MLFLOW_TRACKING_URI"):
        v = (os.environ.get(var) or "").strip()
        if v.startswith(("http://", "https://")):
            return v.rstrip("/")
    return ""


def run_url(value, base: str | None = None) -> str:
    """The MLflow run of a task (``mlflow_run_id`` in its return value), or ''."""
    base = mlflow_ui_url() if base is None else base.rstrip("/")
    run_id = value.get("mlflow_run_id") if isinstance(value, dict) else None
    if not base or not run_id:
        return ""
    return f"{base}/#/runs/{quote(str(run_id))}"


def model_version_url(value, base: str | None = None) -> str:
    """The registered model version of a task (``model_uri`` ``models:/NAME/VERSION``), or ''."""
    base = mlflow_ui_url() if base is None else base.rstrip("/")
    m = _MODEL_URI.match(str(value.get("model_uri", ""))) if isinstance(value, dict) else None
    if not base or not m:
        return ""
    return f"{base}/#/models/{quote(m['name'])}/versions/{m['version']}"
