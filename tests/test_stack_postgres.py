"""The local stack's PostgreSQL mode (``XLIR_DB=postgres``): a real PostgreSQL server from the Debian
package on 127.0.0.1, as its own user, holding Airflow's metadata DB and MLflow's backend store; a DAG
run triggered through the REST API with a conf, then everything stopped by pid."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from xlir.stack.processes import LocalStack
from xlir.stack.run import api_for

from mlqa_slice import write_mlqa_slice
from test_stack import TINY_DEFAULTS


def _server_binaries() -> bool:
    from xlir.stack.postgres import PostgresError, bin_dir

    try:
        return (bin_dir() / "postgres").is_file()
    except PostgresError:
        return False


needs_postgres = pytest.mark.skipif(not _server_binaries(), reason="PostgreSQL server binaries not installed "
                                                                    "(`make test` installs the Debian package as root)")


def test_an_unknown_db_mode_is_one_clear_error(tmp_path):
    from xlir.stack.processes import StackError

    with pytest.raises(StackError, match="sqlite, postgres"):
        LocalStack(tmp_path, db="mysql")


@pytest.fixture
def state_dir():
    """A state folder the server's own user can enter (pytest's tmp folders are root-only)."""
    path = Path(tempfile.mkdtemp(prefix="xlir-pg-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@needs_postgres
def test_a_data_folder_the_server_user_cannot_reach_is_one_clear_error(tmp_path):
    from xlir.stack.postgres import LocalPostgres, PostgresError

    if os.geteuid() != 0:
        pytest.skip("only root hands the server to another user")
    hidden = tmp_path / "private"
    hidden.mkdir(mode=0o700)
    with pytest.raises(PostgresError, match="cannot enter"):
        LocalPostgres(hidden / "postgres", 5432).init(echo=lambda *_: None)


@needs_postgres
def test_system_stack_on_postgres_runs_a_dag_and_stops_cleanly(tmp_path, state_dir):
    import psycopg2

    from xlir.registry import Registry
    from xlir.registry.server import free_port

    train = write_mlqa_slice(tmp_path / "train.jsonl", slice(0, 30))
    stack = LocalStack(state_dir / "stack", db="postgres", mlflow_port=free_port(), api_port=free_port(),
                       postgres_port=free_port())
    lines, pids = [], []
    try:
        stack.up(echo=lines.append)
        assert [s.name for s in stack.status()] == ["postgres", "mlflow", "api-server", "scheduler", "dag-processor",
                                                    "triggerer"]
        assert all(s.running for s in stack.status())
        pg_pid = stack.pid("postgres")
        owner = os.stat(f"/proc/{pg_pid}").st_uid
        assert owner != 0 and owner == stack.postgres.run_as().pw_uid  # never root
        env = stack.env()
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://xlir:")
        pids = stack.processes()
        listening = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout.splitlines()
        ours = [line for line in listening if any(f"pid={p}," in line for p in pids)]
        assert any(f":{stack.ports()['postgres']}" in line.split()[3] for line in ours)
        assert ours and all("127.0.0.1:" in line.split()[3] for line in ours), ours

        api = api_for(stack)
        api.wait_for_dag("xlir_train")
        api.unpause("xlir_train")
        conf = {**TINY_DEFAULTS, "train_datasets": [train], "eval_datasets": ["xquad-r"], "registered_model": "pg-enc"}
        run = api.trigger("xlir_train", conf)
        done = api.follow("xlir_train", run["dag_run_id"], echo=lines.append, poll=3, timeout=900)
        assert done["state"] == "success", lines[-5:]
        promoted = api.xcom("xlir_train", run["dag_run_id"], "promote")
        assert Registry(stack.mlflow_uri, "pg-enc").version(promoted["version"]).tags["pipeline_run_id"] == run["dag_run_id"]

        # the state is in PostgreSQL: Airflow's run and MLflow's registered model
        pg = stack.postgres
        with psycopg2.connect(pg.url("airflow", driver="postgresql")) as conn, conn.cursor() as cur:
            cur.execute("SELECT state FROM dag_run WHERE dag_id = 'xlir_train' AND run_id = %s", (run["dag_run_id"],))
            assert cur.fetchone() == ("success",)
        with psycopg2.connect(pg.url("mlflow", driver="postgresql")) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM model_versions WHERE name = 'pg-enc'")
            assert cur.fetchone()[0] >= 2  # the baseline and the trained version
        assert not (stack.home / "airflow.db").exists() and not (stack.state / "mlflow" / "mlflow.db").exists()
    finally:
        stack.down(echo=lines.append)
    assert "stopped postgres" in lines
    assert not [p for p in pids if os.path.exists(f"/proc/{p}")]
    assert not any(s.running for s in stack.status())
