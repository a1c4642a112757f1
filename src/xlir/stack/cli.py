"""``xlir stack up|down|status|run``: the local MLflow + Airflow stack (register these in xlir.cli)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

StateOption = typer.Option(None, "--state-dir", help="stack state folder (default: $XLIR_STACK_DIR or .xlir/stack)")


def _stack(state_dir: Path | None):
    from xlir.stack.processes import LocalStack

    return LocalStack(state_dir)


def stack_up(state_dir: Path | None = StateOption,
             parallelism: int = typer.Option(2, min=1, max=8, help="Airflow parallelism (tasks at once)"),
             db: str = typer.Option(None, "--db", help="sqlite (default) or postgres: Airflow's metadata DB and "
                                                       "MLflow's backend store on a local PostgreSQL server "
                                                       "(default: $XLIR_DB)")) -> None:
    """Start MLflow and Airflow (api-server, scheduler, dag-processor, triggerer) on 127.0.0.1."""
    from xlir.stack.processes import LocalStack

    stack = LocalStack(state_dir, parallelism=parallelism, db=db)
    _print(stack.up(echo=typer.echo))
    typer.echo(f"Airflow UI {stack.api_url} (user admin, password in {stack.passwords_file}); MLflow {stack.mlflow_uri}")


def stack_down(state_dir: Path | None = StateOption) -> None:
    """Stop every stack process by its pid."""
    stopped = _stack(state_dir).down(echo=typer.echo)
    typer.echo("nothing was running" if not stopped else f"stopped {len(stopped)} service(s)")


def stack_status(state_dir: Path | None = StateOption,
                 as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """What runs where: each service's pid, URL and log."""
    rows = _stack(state_dir).status()
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        _print(rows)


def stack_run(state_dir: Path | None = StateOption,
              source: Path | None = typer.Option(None, help="dataset to land (default: the MLQA-R files)"),
              conf: str = typer.Option("{}", help="JSON conf of a hand-triggered xlir_train run (params by name), "
                                                  'e.g. \'{"steps": 50}\'; implies a new run'),
              retrain: bool = typer.Option(False, "--retrain", help="train again when no new data was ingested "
                                                                   "(default: show the last successful run)")) -> None:
    """Land MLQA-R, trigger xlir_ingest through the REST API, follow it and the xlir_train run it schedules."""
    import os

    from xlir.errors import XlirError
    from xlir.pipeline.params import PipelineParams
    from xlir.stack.run import run_default

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # the report reads one small file

    try:
        conf_dict = json.loads(conf)
        if not isinstance(conf_dict, dict):
            raise ValueError("expected a JSON object of param names and values")
        PipelineParams(**conf_dict)
    except ValueError as e:  # JSON and pydantic errors: refuse before anything is landed
        raise XlirError(f"--conf: {e}") from None
    out = run_default(_stack(state_dir), source=source, conf=conf_dict, retrain=retrain, echo=typer.echo)
    if out["train"]["state"] != "success":
        raise typer.Exit(1)


def stack_init() -> None:
    """Prepare the Airflow this environment describes (compose's airflow-init service runs this): admin
    password file (AIRFLOW_ADMIN_PASSWORD, else generated), `airflow db migrate`, the promotion pool,
    the xlir data folders."""
    import os

    from xlir.stack.init import init_airflow

    init_airflow(password=os.environ.get("AIRFLOW_ADMIN_PASSWORD") or None, echo=typer.echo)
    typer.echo("Airflow initialised")


def _print(rows) -> None:
    for r in rows:
        typer.echo(f"{r.name:14} {'running' if r.running else 'stopped':8} pid={r.pid or '-':<8} {r.url:28} log={r.log}")


app = typer.Typer(help="The local stack: MLflow + Airflow on 127.0.0.1.", no_args_is_help=True)
app.command("up")(stack_up)
app.command("down")(stack_down)
app.command("status")(stack_status)
app.command("run")(stack_run)
app.command("init")(stack_init)
