"""``run_default``: the embedded default job on the running local stack, the way users' data goes.

1. copy the MLQA-R files into the landing folder (as one dataset folder, renamed into place);
2. unpause the xlir DAGs and trigger ``xlir_ingest`` through the REST API;
3. follow the ``xlir_train`` run that the ingest's asset event schedules (default params). When
   nothing new was ingested (a second ``make run``), show the last successful training run
   instead of training the same model again, unless asked to retrain or given a conf;
4. follow both runs task by task (training steps included), then print the candidate against the
   champion, the gate decision, and the Airflow and MLflow links.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from xlir.stack.api import AirflowAPI, AirflowAPIError
from xlir.stack.processes import ADMIN, LocalStack, StackError

DAGS = ("xlir_ingest", "xlir_train", "xlir_compare")


@contextmanager
def client_env(values: dict[str, str]):
    """``values`` in this process's environment while the block runs (MLflow's client reads its
    credentials from there), the previous values back afterwards."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def api_for(stack: LocalStack) -> AirflowAPI:
    try:
        password = json.loads(stack.passwords_file.read_text())[ADMIN]
    except (OSError, ValueError, KeyError):
        raise StackError(f"no admin password in {stack.passwords_file}; run `xlir stack up` first") from None
    return AirflowAPI(stack.api_url, ADMIN, password)


def land_dataset(source: str | Path | list[Path], landing: Path, name: str) -> Path:
    """Copy ``source`` (a folder, a file or a list of files) into ``landing/name`` atomically
    (written under a hidden ``.part`` name, then renamed, so ingest never sees half of it)."""
    tmp, target = landing / f".{name}.part", landing / name
    shutil.rmtree(tmp, ignore_errors=True)
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        shutil.copytree(source, tmp)
    else:
        tmp.mkdir(parents=True)
        for f in [source] if isinstance(source, (str, Path)) else source:
            shutil.copy2(f, tmp / Path(f).name)
    if target.exists():
        shutil.rmtree(tmp)
        return target
    tmp.rename(target)
    return target


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _since(runs: list[dict], after: datetime) -> list[dict]:
    return [r for r in runs if (_time(r.get("queued_at") or r.get("run_after")) or after) >= after]


def published_versions(api: AirflowAPI, after: datetime) -> list[str]:
    """Data versions published by the ``xlir_ingest`` runs that ended after ``after`` (a scheduled
    run may pick the landed files up before the triggered one does)."""
    out = []
    for r in api.runs("xlir_ingest"):
        end = _time(r.get("end_date"))
        if end is not None and end < after:  # finished before the files landed
            continue
        value = api.xcom("xlir_ingest", r["dag_run_id"], "publish")
        if value:
            out += [v for v in value.get("versions") or [value.get("version")] if v and v not in out]
    return out


def wait_for_asset_run(api: AirflowAPI, after: datetime, timeout: float = 300.0) -> dict | None:
    """The first asset-triggered ``xlir_train`` run queued since ``after``, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [r for r in _since(api.runs("xlir_train"), after) if r.get("run_type") == "asset_triggered"]
        if found:
            return min(found, key=lambda r: _time(r.get("queued_at") or r.get("run_after")))
        time.sleep(3.0)
    return None


def last_successful_run(api: AirflowAPI, dag_id: str = "xlir_train") -> dict | None:
    return next((r for r in api.runs(dag_id, limit=50) if r.get("state") == "success"), None)


def training_detail(stack: LocalStack, dag_run_id: str):
    """``follow``'s note for a running ``train`` task: steps done and the latest loss, from the run folder."""
    from xlir.pipeline.tasks import run_dir
    from xlir.training.progress import read_progress

    folder = run_dir(dag_run_id, stack.data_dir("pipeline")) / "train"

    def detail(ti: dict) -> str:
        if ti["task_id"] != "train":
            return ""
        runs = sorted(folder.glob("*/train_config.json")) if folder.is_dir() else []
        progress = read_progress(runs[-1].parent) if runs else None
        if progress is None:
            return "loading model and data"
        loss = f", loss {progress['loss']:.3f}" if progress["loss"] is not None else ""
        return f"step {progress['step']}/{progress['steps']}{loss}"

    return detail


def _ingest_failure(api: AirflowAPI, run_id: str) -> str:
    result = api.xcom("xlir_ingest", run_id, "ingest") or {}
    return result.get("summary") or "see the xlir_ingest task logs in the Airflow UI"


def run_default(stack: LocalStack | None = None, *, source: str | Path | None = None, conf: dict | None = None,
                retrain: bool = False, echo=print, timeout: float = 3 * 3600, poll: float = 5.0) -> dict:
    """Land MLQA-R (or ``source``), trigger ``xlir_ingest`` via the API, follow it and the training run
    it schedules, print the results. Returns the runs' ids and states, the promotion and the report."""
    stack = stack or LocalStack()
    if stack.pid("api-server") is None:
        raise StackError("the stack is not running; start it with `xlir stack up`")
    api = api_for(stack)
    for dag_id in DAGS:
        api.wait_for_dag(dag_id)
        api.unpause(dag_id)
    if source is None:
        from xlir.data.registry import files_for, resolve

        source = [Path(resolve("mlqa-r", f, allow_download=False)) for f in files_for("mlqa-r")]
        name = "mlqa-r"
    else:
        name = Path(source).name if Path(source).is_dir() else Path(source).stem
    started = datetime.now(timezone.utc)
    landed = land_dataset(source, stack.data_dir("landing"), name)
    echo(f"landed {name} in {landed.parent}")
    ingest = api.trigger("xlir_ingest")
    ingest = api.follow("xlir_ingest", ingest["dag_run_id"], echo=echo, poll=poll, timeout=timeout)
    if ingest["state"] != "success":
        raise StackError(f"xlir_ingest run {ingest['dag_run_id']} {ingest['state']}:\n"
                         f"{_ingest_failure(api, ingest['dag_run_id'])}\n{stack.api_url}/dags/xlir_ingest")
    versions = published_versions(api, started)
    train = None
    if versions:
        echo(f"new data version {', '.join(versions)}: the asset event schedules xlir_train")
        train = wait_for_asset_run(api, started)
    elif not retrain and not conf:
        train = last_successful_run(api)
        if train is not None:
            echo(f"no new data (already ingested); showing xlir_train run {train['dag_run_id']} "
                 "(`xlir stack run --retrain` trains again)")
    if train is None:
        echo("triggering xlir_train by hand" + (f" with conf {json.dumps(conf)}" if conf else ""))
        train = api.trigger("xlir_train", conf or {})
    if train.get("state") not in ("success", "failed"):
        train = api.follow("xlir_train", train["dag_run_id"], echo=echo, poll=poll, timeout=timeout,
                           detail=training_detail(stack, train["dag_run_id"]))
    out = {"ingest": {"run_id": ingest["dag_run_id"], "state": ingest["state"]},
           "train": {"run_id": train["dag_run_id"], "state": train["state"]}}
    out.update(report(stack, api, train, echo=echo))
    return out


def report(stack: LocalStack, api: AirflowAPI, train: dict, echo=print) -> dict:
    """Print the training run's outcome: candidate vs champion, gate decision, links."""
    from xlir.pipeline.links import model_version_url, run_url
    from xlir.registry import open_registry
    from xlir.registry.report import render_report, version_report

    run_id = train["dag_run_id"]
    promoted = api.xcom("xlir_train", run_id, "promote")
    registered = api.xcom("xlir_train", run_id, "register")
    echo("")
    echo(f"xlir_train run {run_id}: {train['state']}")
    rep = None
    source = promoted or registered
    if source and source.get("version"):
        name = source.get("registered_model") or (source.get("model_uri") or "").split("/")[1]
        with client_env(stack.mlflow_client_env()):  # MLflow refuses anonymous reads too
            rep = version_report(open_registry(stack.mlflow_uri, name), int(source["version"]))
        echo(render_report(rep))
        if promoted:
            echo(f"promotion: {promoted.get('status')}" + (f": {promoted['message']}" if promoted.get("message") else ""))
    else:
        echo("no model was registered; see the failed task's log in the Airflow UI")
    echo("")
    echo(f"Airflow  {stack.api_url}/dags/xlir_train/runs/{run_id}")
    if source:
        echo(f"MLflow   {model_version_url(source, base=stack.mlflow_uri) or stack.mlflow_uri}")
        echo(f"         {run_url(source, base=stack.mlflow_uri)}")
    echo(f"         {stack.mlflow_uri} (experiments, runs, registered models)")
    return {"promotion": promoted, "report": rep}


__all__ = ["AirflowAPIError", "api_for", "client_env", "land_dataset", "report", "run_default"]
