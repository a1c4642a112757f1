"""The ``xlir`` command: one sub-command group per pipeline stage.

Heavy libraries are imported inside commands, so ``xlir --help`` stays fast.
"""

from __future__ import annotations

import sys

import typer

from xlir.data.cli import app as data_app
from xlir.errors import XlirError
from xlir.evaluation.cli import evaluate_command
from xlir.models.cli import app as model_app
from xlir.registry.cli import app as registry_app
from xlir.registry.cli import promote_command
from xlir.serving.cli import search_command, serve_command
from xlir.stack.cli import app as stack_app
from xlir.training.cli import train_command
from xlir.validation.cli import ingest_command, validate_command

app = typer.Typer(
    name="xlir",
    help="Hybrid-batch fine-tuning and LAReQA evaluation of multilingual retrieval encoders.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data_app, name="data", help="Inspect and fetch the named datasets.")
app.add_typer(model_app, name="model", help="Prepare base encoders and embed text.")
app.command("validate")(validate_command)
app.command("ingest")(ingest_command)
app.command("train")(train_command)
app.command("evaluate")(evaluate_command)
app.add_typer(registry_app, name="registry", help="MLflow registry: versions, gated promotion, rollback.")
app.command("promote")(promote_command)
app.command("serve")(serve_command)
app.command("search")(search_command)
app.add_typer(stack_app, name="stack", help="Local MLflow + Airflow stack on 127.0.0.1 (up, down, status, run).")


def main() -> None:
    """Entry point: user errors print one clear line and exit 2; bugs keep their traceback."""
    try:
        app()
    except XlirError as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
