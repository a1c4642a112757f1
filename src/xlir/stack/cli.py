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
                                                       "(default: $XLIR_DB)"),
             executor: str = typer.Option(None, "--executor", help="local (default) or celery: PostgreSQL, Redis and "
                                                                   "Celery workers (default queue and training queue) "
                                                                   "as separate processes (default: $XLIR_EXECUTOR)"),
             workers: int = typer.Option(1, "--workers", min=1, max=8, help="celery: workers for the default queue "
                                                                            "(one task at a time each)")) -> None:
    """Start MLflow and Airflow (api-server, scheduler, dag-processor, triggerer; with --executor celery
    also PostgreSQL, Redis and the Celery workers) on 127.0.0.1."""
    from xlir.stack.processes import LocalStack

    stack = LocalStack(state_dir, parallelism=parallelism, db=db, executor=executor, workers=workers)
    _print(stack.up(echo=typer.echo))
    typer.echo(f"Airflow UI {stack.api_url} (user admin, password in {stack.passwords_file}); MLflow {stack.mlflow_uri} "
               f"(user admin, password in {stack.mlflow_password_file('admin')}; the pipeline's: eval \"$(xlir stack env)\")")


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
    """Prepare the Airflow this environment describes (compose's airflow-init service runs this): refuse
    CHANGE-ME settings, admin password file (AIRFLOW_ADMIN_PASSWORD, else generated), `airflow db migrate`,
    the promotion pool, the xlir data folders; with MLFLOW_ADMIN_PASSWORD set, MLflow's pipeline user
    (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD) and its permissions."""
    import os

    from xlir.stack.init import check_settings, init_airflow

    check_settings()
    init_airflow(password=os.environ.get("AIRFLOW_ADMIN_PASSWORD") or None, echo=typer.echo)
    typer.echo("Airflow initialised")
    if os.environ.get("MLFLOW_ADMIN_PASSWORD"):
        from xlir.stack.mlflow_auth import PIPELINE_USER, ensure_pipeline_user

        user = os.environ.get("MLFLOW_TRACKING_USERNAME") or PIPELINE_USER
        created = ensure_pipeline_user(os.environ["MLFLOW_TRACKING_URI"], os.environ["MLFLOW_ADMIN_PASSWORD"],
                                       os.environ["MLFLOW_TRACKING_PASSWORD"], user=user)
        typer.echo(f"MLflow pipeline user {user!r} {'created' if created else 'checked'}")


def stack_check_env() -> None:
    """Refuse settings still at .env.example's CHANGE-ME (compose's config-check service runs this
    before any database or store starts); prints the names only, never a value."""
    from xlir.stack.init import check_settings

    check_settings()
    typer.echo("settings checked: no CHANGE-ME left")


def stack_env(state_dir: Path | None = StateOption) -> None:
    """Shell lines that point MLflow's client at this stack as its pipeline user (the password is read
    from its 0600 file when the shell runs them): eval "$(xlir stack env)"."""
    import shlex

    stack = _stack(state_dir)
    typer.echo(f"export MLFLOW_TRACKING_URI={shlex.quote(stack.mlflow_uri)}")
    typer.echo(f"export MLFLOW_TRACKING_USERNAME={shlex.quote(stack.mlflow_user)}")
    typer.echo(f'export MLFLOW_TRACKING_PASSWORD="$(cat {shlex.quote(str(stack.mlflow_password_file(stack.mlflow_user)))})"')


def _print(rows) -> None:
    for r in rows:
        typer.echo(f"{r.name:14} {'running' if r.running else 'stopped':8} pid={r.pid or '-':<8} {r.url:28} log={r.log}")


app = typer.Typer(help="The local stack: MLflow + Airflow on 127.0.0.1.", no_args_is_help=True)
app.command("up")(stack_up)
app.command("down")(stack_down)
app.command("status")(stack_status)
app.command("run")(stack_run)
app.command("init")(stack_init)
app.command("check-env")(stack_check_env)
app.command("env")(stack_env)
