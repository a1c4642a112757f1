"""The local stack's PostgreSQL mode (``XLIR_DB=postgres``): a real PostgreSQL server from the Debian
package on 127.0.0.1, as its own user, holding Airflow's metadata DB and MLflow's backend store, each
owned by its own unprivileged role (compose's ``mlflow/postgres-init.sh`` makes the same); no password
on any process's command line; a DAG run triggered through the REST API with a conf, then everything
stopped by pid."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from xlir.stack.postgres import PostgresError
from xlir.stack.processes import LocalStack
from xlir.stack.run import api_for

from mlqa_slice import write_mlqa_slice
from test_stack import (TINY_DEFAULTS, check_anonymous_alias_move_refused, check_listening_only_on_loopback,
                        check_no_secret_on_a_command_line)


def installed(find, error) -> bool:
    """True when ``find()`` names a server binary that is there (False when it raises ``error``)."""
    try:
        return Path(find()).is_file()
    except error:
        return False


def _postgres_binary() -> Path:
    from xlir.stack.postgres import bin_dir

    return bin_dir() / "postgres"


needs_postgres = pytest.mark.skipif(not installed(_postgres_binary, PostgresError), reason="PostgreSQL server binaries not installed "
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


def _roles(pg) -> dict:
    with pg.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT r.rolname, r.rolsuper, r.rolcreatedb, r.rolcreaterole, "
                    "array(SELECT datname FROM pg_database WHERE datdba = r.oid ORDER BY datname), "
                    "array(SELECT datname FROM pg_database WHERE datname IN ('airflow', 'mlflow', 'legacy') "
                    "      AND has_database_privilege(r.oid, datname, 'CONNECT') ORDER BY datname) "
                    "FROM pg_roles r WHERE r.rolname IN ('airflow', 'mlflow', 'legacy')")
        return {name: {"super": su, "createdb": cdb, "createrole": cr, "owns": owns, "connects": conn_}
                for name, su, cdb, cr, owns, conn_ in cur.fetchall()}


def _only_own_database(roles: dict, names) -> None:
    for name in names:
        assert roles[name] == {"super": False, "createdb": False, "createrole": False, "owns": [name],
                               "connects": [name]}, (name, roles[name])


@needs_postgres
def test_each_database_has_its_own_unprivileged_role_in_compose_and_the_local_stack(state_dir):
    """Compose's init script and the local stack give each database a role that owns it and nothing
    else; a local cluster made before the roles existed is handed over (objects of every kind)."""
    import psycopg2

    from xlir.net import free_port
    from xlir.paths import REPO_ROOT
    from xlir.stack.postgres import bin_dir

    stack = LocalStack(state_dir / "stack", db="postgres", postgres_port=free_port())
    pg = stack.postgres
    pg.init(echo=lambda *_: None)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AIRFLOW"))}
    stack._spawn("postgres", pg.command(), env, **pg.popen_kwargs())
    try:
        pg.wait_ready(lambda: stack.pid("postgres") is not None, 60)
        # compose: mlflow/postgres-init.sh, the passwords by environment (psql's \getenv)
        script_env = {**env, "PATH": f"{bin_dir()}:{os.environ['PATH']}", "PGHOST": "127.0.0.1", "PGPORT": str(pg.port),
                      "PGDATABASE": "postgres", "PGPASSWORD": pg.password(), "POSTGRES_USER": "xlir",
                      "AIRFLOW_DB_PASSWORD": "airflow-from-dot-env", "MLFLOW_DB_PASSWORD": "mlflow-from-dot-env"}
        r = subprocess.run(["bash", str(REPO_ROOT / "mlflow" / "postgres-init.sh")], env=script_env, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        _only_own_database(_roles(pg), ("airflow", "mlflow"))
        psycopg2.connect(host="127.0.0.1", port=pg.port, user="mlflow", password="mlflow-from-dot-env",
                         dbname="mlflow").close()

        # an older local cluster: a database the superuser made and filled (table, serial, enum, view,
        # function, standalone sequence), handed over to its own role by the next start
        conn = pg.connect()
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE legacy")
        conn.close()
        with pg.connect("legacy") as conn, conn.cursor() as cur:
            cur.execute("CREATE TYPE mood AS ENUM ('ok', 'bad'); CREATE TABLE t (id serial PRIMARY KEY, m mood); "
                        "CREATE VIEW v AS SELECT id FROM t; CREATE SEQUENCE s; "
                        "CREATE FUNCTION f(x int) RETURNS int LANGUAGE sql AS 'SELECT x + 1'; "
                        "INSERT INTO t (m) VALUES ('ok')")
        pg.ensure_databases(("airflow", "mlflow", "legacy"))
        roles = _roles(pg)
        _only_own_database(roles, ("airflow", "mlflow", "legacy"))
        legacy = psycopg2.connect(host="127.0.0.1", port=pg.port, user="legacy", password=pg.password("legacy"),
                                  dbname="legacy")
        with legacy as c, c.cursor() as cur:
            cur.execute("ALTER TABLE t ADD COLUMN y int; INSERT INTO t (m, y) VALUES ('bad', 1); "
                        "ALTER TYPE mood ADD VALUE 'meh'; CREATE OR REPLACE VIEW v AS SELECT id, y FROM t; "
                        "SELECT nextval('s'), f(1), count(*) FROM t")
            assert cur.fetchone() == (1, 2, 2)
        # the local stack's URLs: each database as its own role; MLflow's without a password (PGPASSWORD)
        assert pg.url("mlflow", password=False) == f"postgresql+psycopg2://mlflow@127.0.0.1:{pg.port}/mlflow"
        assert pg.url("airflow").startswith("postgresql+psycopg2://airflow:")
        with pytest.raises(psycopg2.OperationalError, match="permission denied"):
            psycopg2.connect(host="127.0.0.1", port=pg.port, user="mlflow", password=pg.password("mlflow"),
                             dbname="airflow")
        sql_env = {**env, "PGPASSWORD": pg.password("mlflow")}
        r = subprocess.run([sys.executable, "-c", "import sqlalchemy, sys; e = sqlalchemy.create_engine(sys.argv[1]); "
                            "print(e.connect().exec_driver_sql('SELECT current_user').scalar())",
                            pg.url("mlflow", password=False)], env=sql_env, capture_output=True, text=True, timeout=60)
        assert r.stdout.strip() == "mlflow", r.stderr[-1000:]
    finally:
        stack.stop_service("postgres")


@needs_postgres
def test_system_stack_on_postgres_runs_a_dag_and_stops_cleanly(tmp_path, state_dir, monkeypatch):
    import psycopg2

    from xlir.registry import Registry
    from xlir.net import free_port

    train = write_mlqa_slice(tmp_path / "train.jsonl", slice(0, 30))
    conf = {**TINY_DEFAULTS, "train_datasets": [train], "eval_datasets": ["xquad-r"], "registered_model": "pg-enc"}
    monkeypatch.setenv("XLIR_PIPELINE_DEFAULTS", json.dumps(conf))  # the deployment's gating (a conf may not loosen it)
    monkeypatch.setenv("XLIR_CACHE_DIR", str(tmp_path / "cache"))  # its own compute slot: not one other work holds
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
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:")
        check_no_secret_on_a_command_line(stack)  # the database passwords included
        _only_own_database(_roles(stack.postgres), ("airflow", "mlflow"))
        for key, value in stack.mlflow_client_env().items():
            monkeypatch.setenv(key, value)
        pids = stack.processes()
        ours = check_listening_only_on_loopback(stack)
        assert any(f":{stack.ports()['postgres']}" in line.split()[3] for line in ours)

        api = api_for(stack)
        api.wait_for_dag("xlir_train")
        api.unpause("xlir_train")
        run = api.trigger("xlir_train", conf)
        done = api.follow("xlir_train", run["dag_run_id"], echo=lines.append, poll=3, timeout=900)
        assert done["state"] == "success", lines[-5:]
        promoted = api.xcom("xlir_train", run["dag_run_id"], "promote")
        assert Registry(stack.mlflow_uri, "pg-enc").version(promoted["version"]).tags["pipeline_run_id"] == run["dag_run_id"]
        check_anonymous_alias_move_refused(stack, "pg-enc")
        check_no_secret_on_a_command_line(stack)  # also once tasks have run

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
