"""Fixtures shared by the test modules: an isolated Airflow home and database, the DagBag.

Airflow reads its configuration once, when it is first imported, so ``airflow_home`` sets the
environment before any test imports it (no test module imports Airflow at collection time) and
refuses to go on if something imported it earlier with another home.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from xlir.stack.env import airflow_env


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory):
    """An AIRFLOW_HOME of its own for this test process (SQLite, DAG and plugin folders of the repo)."""
    home = tmp_path_factory.mktemp("airflow-home")
    if "airflow" in sys.modules and os.environ.get("AIRFLOW_HOME") != str(home):
        raise RuntimeError("Airflow was imported before the airflow_home fixture set its environment")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in airflow_env(home).items():
            mp.setenv(key, value)
        mp.setenv("XLIR_INGEST_SCHEDULE", "*/15 * * * *")
        mp.setenv("XLIR_INGEST_QUIET_SECONDS", "0")  # test files are written whole before a run
        mp.setenv("XLIR_ALERT_WEBHOOK_URL", "")  # never the shell's webhook: a test that wants alerts sets a local one
        yield home


@pytest.fixture(scope="session")
def airflow_db(airflow_home):
    """``airflow db migrate`` once per test process, in the isolated home."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True,
                   env=os.environ.copy(), timeout=600)
    return airflow_home


@pytest.fixture(scope="session")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
