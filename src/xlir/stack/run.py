"""``run_default``: the embedded default job on the running local stack, through the REST API.

1. copy the MLQA-R files into the landing folder (as one dataset folder, renamed into place);
2. unpause the xlir DAGs and trigger ``xlir_ingest``;
3. wait for the ``xlir_train`` run that the ingest's asset event schedules (or, when the data was
   already ingested earlier and no event comes, trigger ``xlir_train`` by hand);
4. follow both runs task by task, then print the promotion result and the registry table.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from xlir.stack.api import AirflowAPI, AirflowAPIError
from xlir.stack.processes import ADMIN, LocalStack, StackError

DAGS = ("xlir_ingest", "xlir_train", "xlir_compare")


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


def wait_for_asset_run(api: AirflowAPI, after: str, timeout: float = 300.0) -> dict | None:
    """The first asset-triggered ``xlir_train`` run queued after ``after`` (ISO time), or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for r in api.runs("xlir_train"):
            if r.get("run_type") == "asset_triggered" and (r.get("queued_at") or r.get("run_after") or "") >= after:
                return r
        time.sleep(3.0)
    return None


def run_default(stack: LocalStack | None = None, *, source: str | Path | None = None, conf: dict | None = None,
                echo=print, timeout: float = 3 * 3600) -> dict:
    """Land MLQA-R, trigger ``xlir_ingest`` via the API, follow it and the training run it schedules."""
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
        name = Path(source).name
    landed = land_dataset(source, stack.data_dir("landing"), name)
    echo(f"landed {source} as {landed}")
    ingest = api.trigger("xlir_ingest")
    echo(f"triggered xlir_ingest run {ingest['dag_run_id']}")
    ingest = api.follow("xlir_ingest", ingest["dag_run_id"], echo=echo, timeout=timeout)
    published = api.xcom("xlir_ingest", ingest["dag_run_id"], "publish")
    if published:
        echo(f"ingested data version {published.get('version')}; waiting for the asset-triggered xlir_train run")
        train = wait_for_asset_run(api, ingest.get("queued_at") or ingest.get("run_after") or "")
    else:
        train = None
    if train is None:
        echo("no new data version (already ingested): triggering xlir_train by hand")
        train = api.trigger("xlir_train", conf or {})
    train = api.follow("xlir_train", train["dag_run_id"], echo=echo, timeout=timeout)
    promoted = api.xcom("xlir_train", train["dag_run_id"], "promote")
    echo(f"xlir_train {train['state']}: promotion {json.dumps(promoted)}")
    table = []
    try:
        from xlir.registry import registry_table

        table = registry_table(tracking_uri=stack.mlflow_uri, limit=10)
        for row in table:
            echo("  " + "  ".join(f"{k}={v}" for k, v in row.items() if v not in (None, "", [])))
    except Exception as e:  # noqa: BLE001 - the table is a courtesy
        echo(f"(registry table unavailable: {e})")
    return {"ingest": {"run_id": ingest["dag_run_id"], "state": ingest["state"]},
            "train": {"run_id": train["dag_run_id"], "state": train["state"]}, "promotion": promoted,
            "registry": table}


__all__ = ["AirflowAPIError", "api_for", "land_dataset", "run_default"]
