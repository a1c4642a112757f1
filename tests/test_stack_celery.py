"""The local stack's Celery mode (``XLIR_EXECUTOR=celery``): PostgreSQL, Redis (the Debian package,
127.0.0.1, a password, its append-only file under the stack folder) and Celery workers as separate
processes, one for the training queue and two for the default queue, everything stopped by pid.

The system tests share one stack (module fixture) and the tiny encoder, and prove what users who
outgrow one process rely on: the queues route train and evaluate to the training worker; a training
worker killed with SIGKILL past a checkpoint costs a retry that resumes to the same weights; a broker
restart loses no queued task; two runs at once promote one at a time."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import tempfile
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from mlqa_slice import write_mlqa_slice
from test_stack import TINY_DEFAULTS, check_listening_only_on_loopback, check_no_secret_on_a_command_line
from test_stack_postgres import installed, needs_postgres, state_dir  # noqa: F401 (a fixture)
from xlir.stack.processes import TRAIN_WORKER, LocalStack, StackError, default_worker
from xlir.stack.redis import RedisError, server_binary


needs_redis = pytest.mark.skipif(not installed(server_binary, RedisError), reason="redis-server not installed (`make test` installs the "
                                                             "Debian package as root)")


# ---------------------------------------------------------------- configuration (no server)


def test_celery_needs_postgres_and_an_unknown_executor_is_one_clear_error(tmp_path):
    with pytest.raises(StackError, match="local, celery"):
        LocalStack(tmp_path, executor="kubernetes")
    with pytest.raises(StackError, match="XLIR_EXECUTOR=celery needs XLIR_DB=postgres"):
        LocalStack(tmp_path, executor="celery", db="sqlite")
    with pytest.raises(StackError, match="at least one worker"):
        LocalStack(tmp_path, executor="celery", workers=0)
    assert LocalStack(tmp_path, executor="celery").db == "postgres"


def test_celery_workers_serve_their_queue_one_task_at_a_time_without_a_log_server(tmp_path):
    stack = LocalStack(tmp_path, executor="celery", workers=2)
    assert stack.services == ("postgres", "redis", "mlflow", "api-server", "scheduler", "dag-processor", "triggerer",
                              "worker-default-1", "worker-default-2", "worker-training")
    cmds = stack._commands()
    for name, queue in ((default_worker(1), "default"), (default_worker(2), "default"), (TRAIN_WORKER, "training")):
        cmd = cmds[name]
        assert cmd[cmd.index("--queues") + 1] == queue and cmd[cmd.index("--concurrency") + 1] == "1"
        assert cmd[cmd.index("--celery-hostname") + 1] == f"{name}@%h" and "--skip-serve-logs" in cmd
    env = stack.env()
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor" and env["XLIR_TRAIN_QUEUE"] == "training"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == f"redis://:{stack.redis.password()}@127.0.0.1:{stack.ports()['redis']}/0"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert int(env["AIRFLOW__CORE__PARALLELISM"]) >= 3  # every worker may hold a task
    worker_env = stack._env_for(TRAIN_WORKER, env)
    assert worker_env["XLIR_WORKER_NAME"] == TRAIN_WORKER and "XLIR_WORKER_NAME" not in stack._env_for("scheduler", env)
    secrets = [stack.redis.password(), stack.postgres.password("airflow"), stack.postgres.password("mlflow")]
    assert not [c for c in cmds.values() if any(s in " ".join(c) for s in secrets)]


def test_a_worker_records_its_own_name_as_the_hostname_of_its_tasks(monkeypatch):
    from xlir.stack.env import worker_hostname

    monkeypatch.setenv("XLIR_WORKER_NAME", "worker-training")
    assert worker_hostname() == f"worker-training@{socket.gethostname()}"
    monkeypatch.delenv("XLIR_WORKER_NAME")
    assert worker_hostname() == socket.gethostname()


@needs_redis
def test_redis_config_binds_loopback_requires_a_password_and_keeps_state_under_the_stack(state_dir):
    from xlir.stack.redis import LocalRedis

    tmp_path = state_dir  # one the server's own user can enter
    redis = LocalRedis(tmp_path / "redis", 6390)
    redis.prepare()
    text = redis.config_file.read_text()
    assert stat.S_IMODE(redis.config_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "redis" / "password").stat().st_mode) == 0o600
    lines = text.splitlines()
    assert "bind 127.0.0.1" in lines and 'unixsocket ""' in lines and "port 6390" in lines
    assert f'requirepass "{redis.password()}"' in lines
    assert f"dir {tmp_path / 'redis' / 'data'}" in lines and "appendonly yes" in lines and 'save ""' in lines
    assert redis.command()[-1] == str(redis.config_file)  # the password is in the file, not the command


def test_the_broker_never_hands_a_running_task_to_a_second_worker(monkeypatch):
    """Redis redelivers a task not acknowledged within the visibility timeout (Celery's default 24 h);
    it must outlast every task's time bound (training: 48 h by default), whatever they are set to."""
    from xlir.pipeline.dag_support import TIMEOUTS, timeout_seconds
    from xlir.stack.env import visibility_timeout

    assert visibility_timeout() > max(timeout_seconds(k) for k in TIMEOUTS) == 48 * 3600
    monkeypatch.setenv("XLIR_TRAIN_TIMEOUT", str(5 * 24 * 3600))
    assert visibility_timeout() > 5 * 24 * 3600


def test_max_active_training_runs_is_a_positive_whole_number(monkeypatch):
    from xlir.errors import XlirError
    from xlir.pipeline.dag_support import max_active_runs

    assert max_active_runs() == 1
    monkeypatch.setenv("XLIR_TRAIN_MAX_ACTIVE_RUNS", "2")
    assert max_active_runs() == 2
    monkeypatch.setenv("XLIR_TRAIN_MAX_ACTIVE_RUNS", "0")
    with pytest.raises(XlirError, match="at least 1"):
        max_active_runs()


# ---------------------------------------------------------------- system tests: one real stack


@pytest.fixture(scope="module")
def celery(tmp_path_factory):
    """The Celery stack: PostgreSQL, Redis, MLflow, Airflow, two default workers and the training worker,
    in a state folder the servers' own users can enter, with the tiny encoder as the deployment's default
    (a fresh cache: no compute slot shared with other work on this machine), one torch thread, a
    30 s task heartbeat timeout (Airflow's default 300 s: how long a dead worker's task counts as
    running), and two training runs allowed at once."""
    state = Path(tempfile.mkdtemp(prefix="xlir-celery-"))
    state.chmod(0o755)
    work = tmp_path_factory.mktemp("celery")
    train = write_mlqa_slice(work / "train.jsonl", slice(0, 30))
    conf = {**TINY_DEFAULTS, "train_datasets": [train], "eval_datasets": ["xquad-r"], "registered_model": "celery-enc"}
    lines: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {"XLIR_PIPELINE_DEFAULTS": json.dumps(conf), "XLIR_CACHE_DIR": str(work / "cache"),
                           "XLIR_TORCH_THREADS": "1", "XLIR_TRAIN_MAX_ACTIVE_RUNS": "2",
                           "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
                           "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5"}.items():
            mp.setenv(key, value)
        from xlir.net import free_port
        from xlir.stack.run import api_for

        stack = LocalStack(state / "stack", executor="celery", workers=2, mlflow_port=free_port(),
                           api_port=free_port(), postgres_port=free_port(), redis_port=free_port())
        pids: list[int] = []
        try:
            stack.up(echo=lines.append)
            pids = stack.processes()
            for key, value in stack.mlflow_client_env().items():
                mp.setenv(key, value)
            api = api_for(stack)
            api.wait_for_dag("xlir_train")
            api.unpause("xlir_train")
            yield SimpleNamespace(stack=stack, api=api, conf=conf, lines=lines, work=work)
        finally:
            stack.down(echo=lines.append)
            pids += [p for p in stack.processes() if p not in pids]
            shutil.rmtree(state, ignore_errors=True)
    assert not [p for p in pids if os.path.exists(f"/proc/{p}")], "a stack process outlived `down`"


def _trigger(c, **conf) -> str:
    return c.api.trigger("xlir_train", {**c.conf, **conf})["dag_run_id"]


def _tis(c, run_id: str) -> dict[str, dict]:
    return {t["task_id"] + (f"[{t['map_index']}]" if t.get("map_index", -1) >= 0 else ""): t
            for t in c.api.task_instances("xlir_train", run_id)}


def _wait(what: str, check, timeout: float, poll: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(poll)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


def _follow(c, run_id: str, timeout: float = 600) -> dict:
    done = c.api.follow("xlir_train", run_id, echo=c.lines.append, poll=2, timeout=timeout)
    assert done["state"] == "success", c.lines[-20:]
    return done


def check_routing(tis: dict[str, dict]) -> set[str]:
    """train and evaluate ran on the training worker's queue and host name, every other task on a default
    worker; returns the default workers' host names."""
    host = socket.gethostname()
    defaults = set()
    for name, t in tis.items():
        if t["state"] in ("skipped",):
            continue
        if name == "train" or name.startswith("evaluate"):
            assert (t["queue"], t["hostname"]) == ("training", f"{TRAIN_WORKER}@{host}"), (name, t["queue"], t["hostname"])
        else:
            assert t["queue"] == "default" and t["hostname"].startswith("worker-default-"), (name, t["queue"], t["hostname"])
            defaults.add(t["hostname"])
    return defaults


@needs_postgres
@needs_redis
def test_system_celery_stack_listens_on_loopback_only_and_keeps_passwords_off_command_lines(celery):
    """Every service of the mode runs (the broker as its own user when started by root), only 127.0.0.1
    listens (Redis included), and no password (Redis's included) is on any process's command line.
    (The REST-triggered runs below check where each task ran.)"""
    stack = celery.stack
    assert [s.name for s in stack.status() if s.running] == list(stack.services)
    if os.geteuid() == 0:  # root hands the broker to its own user
        assert os.stat(f"/proc/{stack.pid('redis')}").st_uid == stack.redis.run_as().pw_uid != 0
    ours = check_listening_only_on_loopback(stack)
    assert any(f":{stack.ports()['redis']}" in line.split()[3] for line in ours)
    check_no_secret_on_a_command_line(stack)


def _train_folder(c, run_id: str) -> Path:
    from xlir.pipeline.tasks import run_dir

    return run_dir(run_id, c.stack.data_dir("pipeline")) / "train"


def _checkpoint_steps(folder: Path) -> list[int]:
    return sorted(int(p.parent.name.split("-")[1]) for p in folder.glob("*/checkpoints/checkpoint-*/trainer_state.json"))


@needs_postgres
@needs_redis
def test_system_training_worker_killed_past_a_checkpoint_resumes_to_the_same_weights(celery, tmp_path):
    """SIGKILL to the training worker's whole process group (the worker, its pool, the task) once a
    checkpoint is on disk; a new training worker takes the retry (after the scheduler finds the task's
    heartbeat gone), which resumes from the last checkpoint and ends with the weights of an uninterrupted
    run with the same params; one registered version for the run."""
    import torch

    from test_training_run import weights
    from tiny_training import torch_threads
    from xlir.pipeline.params import PipelineParams
    from xlir.registry import Registry
    from xlir.training import train

    c, stack = celery, celery.stack
    conf = {**c.conf, "steps": 8, "checkpoint_every": 2}
    run_id = _trigger(c, **conf)
    folder = _train_folder(c, run_id)
    _wait("a checkpoint of the running train task", lambda: _checkpoint_steps(folder), timeout=300, poll=0.2)
    worker = stack.pid(TRAIN_WORKER)
    os.killpg(worker, signal.SIGKILL)
    at_kill = _checkpoint_steps(folder)
    assert not list(folder.glob("*/train_result.json")), "training finished before the kill"
    assert _tis(c, run_id)["train"]["state"] == "running"
    _wait("the killed worker gone", lambda: stack.pid(TRAIN_WORKER) is None, timeout=30)
    stack.start(TRAIN_WORKER)

    _follow(c, run_id)
    ti = _tis(c, run_id)["train"]
    assert ti["try_number"] == 2 and ti["hostname"] == f"{TRAIN_WORKER}@{socket.gethostname()}"
    result = json.loads(next(folder.glob("*/train_result.json")).read_text())
    assert result["resumed_from_step"] >= at_kill[-1] > 0 and result["steps"] == 8
    log = stack.home / "logs" / "dag_id=xlir_train" / f"run_id={run_id}" / "task_id=train" / "attempt=2.log"
    assert "resuming from checkpoint" in log.read_text() and f"step {result['resumed_from_step']} of 8" in log.read_text()

    trained = c.api.xcom("xlir_train", run_id, "train")
    prepared = c.api.xcom("xlir_train", run_id, "prepare")
    p = PipelineParams(**conf)
    cfg = p.train_config(train_datasets=prepared["train_datasets"], strategy=p.strategy, alpha=p.alpha,
                         validation_precision="fp32", output_dir=tmp_path / "whole")
    with torch_threads(1):
        whole = train(cfg, show_progress=False)
    a, b = weights(whole.model_dir), weights(trained["model_dir"])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    versions = Registry(stack.mlflow_uri, conf["registered_model"]).versions()
    assert len([v for v in versions if v.tags.get("pipeline_run_id") == run_id]) == 1


@needs_postgres
@needs_redis
def test_system_two_runs_survive_a_broker_restart_route_by_queue_and_promote_one_at_a_time(celery):
    """Two REST-triggered runs of the same registered model at once.

    Broker restart: with the training worker stopped, both runs' train tasks wait in Redis; Redis is
    stopped (SIGTERM: it writes its append-only file) and started again; the messages are still there,
    the training worker started afterwards takes them, and both runs complete with every task on its
    first try. Queues: the task-instance rows say train and evaluate ran on the training worker (queue
    and host name), every other task on the default workers, both of them. Promotions: the one-slot
    pool is closed (0 slots) until both runs wait at promote, then opened; the two promotions run one
    after the other, and both decisions are recorded on their versions."""
    from xlir.pipeline.params import PROMOTION_POOL
    from xlir.registry import Registry

    c, stack = celery, celery.stack
    stack.stop_service(TRAIN_WORKER)
    c.api.set_pool_slots(PROMOTION_POOL, 0)
    try:
        runs = [_trigger(c), _trigger(c)]
        queued = lambda: stack.redis.client().llen("training")  # noqa: E731 (Celery's queue: a Redis list)
        _wait("both train tasks queued in Redis",
              lambda: all(_tis(c, r)["train"]["state"] == "queued" for r in runs) and queued() >= 2, timeout=300)
        before = stack.pid("redis")
        assert stack.stop_service("redis") and stack.pid("redis") is None
        time.sleep(3)  # the scheduler and the default workers lose the broker meanwhile
        assert stack.start("redis") != before
        assert queued() >= 2, "a queued task was lost with the broker's restart"
        stack.start(TRAIN_WORKER)
        _wait("both runs waiting for the promotion pool",
              lambda: all(_tis(c, r)["promote"]["state"] == "scheduled" for r in runs), timeout=600, poll=3)
    finally:
        c.api.set_pool_slots(PROMOTION_POOL, 1)
        stack.start(TRAIN_WORKER)
    for r in runs:
        _follow(c, r)
    tis = [_tis(c, r) for r in runs]
    assert all(t["try_number"] == 1 for run in tis for t in run.values()), [
        {n: t["try_number"] for n, t in run.items()} for run in tis]
    defaults = set().union(*(check_routing(run) for run in tis))
    assert defaults == {f"worker-default-{i}@{socket.gethostname()}" for i in (1, 2)}, defaults
    promotes = sorted((run["promote"] for run in tis), key=lambda t: t["start_date"])
    first_end, second_start = (datetime.fromisoformat(t.replace("Z", "+00:00"))
                               for t in (promotes[0]["end_date"], promotes[1]["start_date"]))
    assert first_end <= second_start, "two promotions overlapped"
    reg = Registry(stack.mlflow_uri, c.conf["registered_model"])
    decided = [(v.tags.get("pipeline_run_id"), v.tags.get("gate.status")) for v in reg.versions()
               if v.tags.get("pipeline_run_id") in runs]
    assert sorted(r for r, _ in decided) == sorted(runs), decided  # one version each
    assert all(status in ("passed", "rejected") for _, status in decided), decided
    check_no_secret_on_a_command_line(stack)  # also once tasks have run
