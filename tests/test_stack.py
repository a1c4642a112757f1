"""The local stack: configuration that binds nothing beyond 127.0.0.1, and (system test) the real
stack started by ``LocalStack.up``, a DAG run triggered through the REST API with a conf and
polled to success, the MLflow registry checked, everything stopped by pid, nothing left behind."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from mlqa_slice import write_mlqa_slice
from xlir.errors import XlirError
from xlir.stack.env import airflow_env
from xlir.stack.processes import LocalStack, boot_id, start_time
from xlir.stack.run import api_for, land_dataset


def test_airflow_env_binds_only_loopback_and_keeps_parallelism_low(tmp_path):
    env = airflow_env(tmp_path, parallelism=2, api_port=8123)
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_HOST"] == "127.0.0.1"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__PARALLELISM"] == "2"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("sqlite:///")
    assert "SimpleAuthManager" in env["AIRFLOW__CORE__AUTH_MANAGER"]


def test_scheduler_and_triggerer_skip_the_all_interfaces_log_server(tmp_path):
    cmds = LocalStack(tmp_path)._commands()
    assert "--skip-serve-logs" in cmds["scheduler"] and "--skip-serve-logs" in cmds["triggerer"]
    assert cmds["api-server"][cmds["api-server"].index("--host") + 1] == "127.0.0.1"
    assert cmds["mlflow"][cmds["mlflow"].index("--host") + 1] == "127.0.0.1"


def test_the_one_server_wait_loop_tells_ready_exited_and_timeout_apart():
    from xlir.net import wait_until
    from xlir.stack.servers import wait_ready

    answers = iter([False, False, True])
    assert wait_until(lambda: next(answers), lambda: True, timeout=5, poll=0.01) == "ready"
    assert wait_until(lambda: False, lambda: False, timeout=5, poll=0.01) == "exited"
    assert wait_until(lambda: False, lambda: True, timeout=0.05, poll=0.01) == "timeout"

    def refused():
        raise ConnectionRefusedError("connection refused on 127.0.0.1:5432")

    with pytest.raises(XlirError, match="postgres not ready: connection refused on 127.0.0.1:5432"):
        wait_ready(refused, (OSError,), lambda: False, timeout=5, what="postgres", poll=0.01)


def test_a_stale_pid_file_is_not_a_running_service(tmp_path):
    stack = LocalStack(tmp_path)
    stack.pid_file("scheduler").parent.mkdir(parents=True)
    stack.pid_file("scheduler").write_text(f"{os.getpid()} airflow scheduler\n")  # this pytest, not a scheduler
    assert stack.pid("scheduler") is None
    assert not stack.pid_file("scheduler").exists()
    assert stack.down(echo=lambda *_: None) == []


def test_down_never_signals_an_unrelated_process_whose_pid_is_in_a_pid_file(tmp_path):
    """A pid reused by another process whose command line names the service (another user's airflow
    scheduler, an editor on airflow.cfg...) is not the stack's: the start time recorded with the pid
    differs and, for a pid file of the older ``PID name`` format, it does not run in the stack's folder."""
    stack = LocalStack(tmp_path / "stack")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", "airflow scheduler", "mlflow server",
                              "airflow api-server"], cwd=tmp_path)
    try:
        stack.pid_file("scheduler").parent.mkdir(parents=True)
        stack.pid_file("scheduler").write_text(f"{other.pid} airflow scheduler\n")  # the older format
        stack.pid_file("mlflow").write_text(f"{other.pid} mlflow server\n")
        stack.pid_file("api-server").write_text(json.dumps({"pid": other.pid, "start": start_time(other.pid) - 1,
                                                            "boot": boot_id()}))  # its pid, another start
        assert [stack.pid(n) for n in ("scheduler", "mlflow", "api-server")] == [None, None, None]
        for n in ("scheduler", "mlflow", "api-server"):
            stack.pid_file(n).write_text(f"{other.pid} {n.replace('-', ' ')}\n")
        assert stack.down(echo=lambda *_: None) == [] and stack.processes() == []
        assert other.poll() is None  # still running: never signalled
    finally:
        other.kill()
        other.wait()


def test_a_service_is_known_by_the_pid_and_start_time_it_was_started_with(tmp_path):
    stack = LocalStack(tmp_path / "stack")
    stack.state.mkdir(parents=True)
    pid = stack._spawn("triggerer", [sys.executable, "-c", "import time; time.sleep(300)"], dict(os.environ))
    record = json.loads(stack.pid_file("triggerer").read_text())
    assert record["pid"] == pid and record["start"] == start_time(pid) and record["boot"] == boot_id()
    assert stack.pid("triggerer") == pid and stack.processes() == [pid]
    assert stack.down(echo=lambda *_: None) == ["triggerer"]
    assert start_time(pid) is None or Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z"


def secrets_of(stack: LocalStack) -> dict[str, str]:
    """Every password the stack generated, by where it is kept."""
    out = {"airflow admin": json.loads(stack.passwords_file.read_text())["admin"]}
    for f in sorted((stack.state / "mlflow" / "auth").glob("*.password")):
        out[f"mlflow {f.stem}"] = f.read_text().strip()
    for f in sorted((stack.state / "postgres").glob("*password")):
        out[f"postgres {f.name}"] = f.read_text().strip()
    if (stack.state / "redis" / "password").is_file():
        out["redis"] = (stack.state / "redis" / "password").read_text().strip()
    return out


def check_listening_only_on_loopback(stack: LocalStack) -> list[str]:
    """Every socket the stack's processes listen on is on 127.0.0.1; returns those lines of `ss`."""
    pids = stack.processes()
    listening = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout.splitlines()
    ours = [line for line in listening if any(f"pid={p}," in line for p in pids)]
    assert ours and all("127.0.0.1:" in line.split()[3] for line in ours), ours
    return ours


def check_no_secret_on_a_command_line(stack: LocalStack) -> None:
    """``/proc/PID/cmdline`` of every stack process (readable by any local user) holds no password."""
    secrets = secrets_of(stack)
    assert len(secrets) >= 3 and all(len(v) >= 12 for v in secrets.values()), secrets.keys()
    pids = stack.processes()
    assert pids
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        leaked = [name for name, value in secrets.items() if value in cmdline]
        assert not leaked, (pid, leaked)


def check_anonymous_alias_move_refused(stack: LocalStack, model: str) -> None:
    from xlir.stack.mlflow_auth import request

    status, _ = request(stack.mlflow_uri, "POST", "/api/2.0/mlflow/registered-models/alias",
                        {"name": model, "alias": "champion", "version": "1"})
    assert status == 401
    status, _ = request(stack.mlflow_uri, "DELETE", "/api/2.0/mlflow/registered-models/delete", {"name": model})
    assert status == 401


def test_land_dataset_renames_a_complete_copy_into_landing(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "en.json").write_text("{}")
    landing = tmp_path / "landing"
    landing.mkdir()
    out = land_dataset([src / "en.json"], landing, "mine")
    assert out == landing / "mine" and (out / "en.json").is_file()
    assert [p.name for p in landing.iterdir()] == ["mine"]


TINY_DEFAULTS = {"base_model": "tiny", "steps": 2, "batch_size": 4, "max_seq_length": 32, "eval_max_seq_length": 32, "checkpoint_every": 1,
                 "validation_fraction": 0.0, "eval_questions_per_lang": 3, "eval_datasets": ["xquad-r", "dream"],
                 "gate_profile": "smoke", "gate_overrides": {"retrieval.min_gain_mul": -1.0}}


def test_system_stack_runs_the_pipeline_through_the_rest_api_and_stops_cleanly(tmp_path, monkeypatch):
    """What `make run` does, with the tiny encoder as the deployment's default: land a file, trigger
    xlir_ingest through the REST API, follow the asset-triggered xlir_train, print the report; a second
    run reuses it; a run triggered with a conf; then everything stopped by pid."""
    from xlir.pipeline.tasks import ingest_dirs
    from xlir.registry import Registry
    from xlir.net import free_port
    from xlir.stack.run import published_versions, run_default

    train = write_mlqa_slice(tmp_path / "train.jsonl", slice(0, 30))
    landed = write_mlqa_slice(tmp_path / "new-qa.jsonl", slice(30, 60))
    monkeypatch.setenv("XLIR_PIPELINE_DEFAULTS", json.dumps({**TINY_DEFAULTS, "train_datasets": [train],
                                                             "registered_model": "system-enc"}))
    monkeypatch.setenv("XLIR_CACHE_DIR", str(tmp_path / "cache"))  # its own compute slot: not one other work holds
    monkeypatch.setenv("XLIR_INGEST_QUIET_SECONDS", "0")  # the file is written whole before it lands (run alone,
    # this test would otherwise depend on how soon the triggered ingest starts: within 30 s it ingests nothing)
    stack = LocalStack(tmp_path / "stack", mlflow_port=free_port(), api_port=free_port())
    lines = []
    pids = []
    try:
        stack.up(echo=lines.append)
        secrets = secrets_of(stack)
        # each admin password shown once (Airflow's, MLflow's), the pipeline's never
        assert sum(secrets["airflow admin"] in line for line in lines) == 1
        assert sum(secrets["mlflow admin"] in line for line in lines) == 1
        assert not any(secrets["mlflow xlir"] in line for line in lines)
        auth = stack.state / "mlflow" / "auth"  # passwords, secret key, config; the user DB: SQLite's mode
        assert stat.S_IMODE(auth.stat().st_mode) == 0o700
        for f in (stack.passwords_file, *auth.glob("*.password"), auth / "flask-secret-key", auth / "basic_auth.ini"):
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        assert all(s.running for s in stack.status())
        check_no_secret_on_a_command_line(stack)
        for key, value in stack.mlflow_client_env().items():  # this test reads the registry as the pipeline
            monkeypatch.setenv(key, value)
        pids = stack.processes()
        check_listening_only_on_loopback(stack)

        # 1. the data's way: landing -> xlir_ingest (REST) -> asset event -> xlir_train (default params)
        first = run_default(stack, source=landed, echo=lines.append, poll=2, timeout=900)
        assert first["train"]["state"] == "success", lines[-30:]
        api = api_for(stack)
        run = api.run("xlir_train", first["train"]["run_id"])
        assert run["run_type"] == "asset_triggered"
        # the version some ingest run published: the triggered one, or the scheduled run that unpausing
        # xlir_ingest starts, when that one picks the landed file up first
        published = published_versions(api, datetime(2000, 1, 1, tzinfo=timezone.utc))
        assert len(published) == 1, published
        version = published[0]
        store = Path(ingest_dirs(store=str(stack.data_dir("store")))["store"])
        prepared = api.xcom("xlir_train", run["dag_run_id"], "prepare")
        assert prepared["train_datasets"] == [train, str(store / version / "questions.parquet")]
        text = "\n".join(lines)
        assert "candidate v2 vs v1 (untuned baseline)" in text and "dream" in text and "gate: passed" in text, text
        assert any("train " in line and "step 2/2" in line or "train" in line and "success" in line for line in lines)
        assert f"{stack.api_url}/dags/xlir_train/runs/{run['dag_run_id']}" in text
        reg = Registry(stack.mlflow_uri, "system-enc")
        assert reg.champion().version == first["promotion"]["version"] == 2
        check_anonymous_alias_move_refused(stack, "system-enc")
        assert reg.champion().version == 2

        # 2. a second run: nothing new to ingest, so the last training run is shown, not repeated
        n_runs = len(api.runs("xlir_train"))
        lines.clear()
        second = run_default(stack, source=landed, echo=lines.append, poll=2, timeout=600)
        assert second["train"]["run_id"] == first["train"]["run_id"] and len(api.runs("xlir_train")) == n_runs
        assert any("no new data" in line for line in lines)

        # 3. a run triggered by hand through the REST API with a conf
        conf = {**TINY_DEFAULTS, "train_datasets": [train], "registered_model": "system-conf"}
        run = api.trigger("xlir_train", conf)
        assert run["conf"]["registered_model"] == "system-conf"
        done = api.follow("xlir_train", run["dag_run_id"], echo=lines.append, poll=3, timeout=900)
        assert done["state"] == "success", lines[-3:]
        promoted = api.xcom("xlir_train", run["dag_run_id"], "promote")
        reg = Registry(stack.mlflow_uri, "system-conf")
        assert reg.version(promoted["version"]).tags.get("pipeline_run_id") == run["dag_run_id"]
        assert reg.champion() is not None
    finally:
        stack.down(echo=lines.append)
    assert not [p for p in pids if os.path.exists(f"/proc/{p}")]
    assert not any(s.running for s in stack.status())


def test_follow_prints_one_line_per_state_change_of_each_task_even_when_its_label_is_rendered_late():
    from xlir.stack.api import AirflowAPI

    polls = iter([
        ("running", [{"task_id": "evaluate", "map_index": 0, "state": "running"}]),
        ("running", [{"task_id": "evaluate", "map_index": 0, "state": "running", "rendered_map_index": "xquad-r"}]),
        ("success", [{"task_id": "evaluate", "map_index": 0, "state": "success", "rendered_map_index": "xquad-r",
                      "duration": 12.0}]),
    ])

    class FakeAPI(AirflowAPI):
        def run(self, dag_id, run_id):
            self.state, self.tis = next(polls)
            return {"state": self.state}

        def task_instances(self, dag_id, run_id):
            return self.tis

    lines = []
    assert FakeAPI("http://127.0.0.1:1", "u", "p").follow("d", "r", echo=lines.append, poll=0)["state"] == "success"
    assert [line.split()[1:] for line in lines[1:]] == [["evaluate[0]", "running"],
                                                        ["evaluate[xquad-r]", "success", "in", "12", "s"]]
