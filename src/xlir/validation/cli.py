"""``xlir validate`` and ``xlir ingest``: typer command functions for the main app.

Register with ``app.command("validate")(validate_command)`` and
``app.command("ingest")(ingest_command)``. ``validate`` exits 0 when the data is valid and 1 when
not; user errors (a missing path, an unknown format, a bad config file) raise ``XlirError``,
which the main CLI prints as ``error: ...`` with exit code 2.
"""

from __future__ import annotations

from pathlib import Path

import typer

from xlir.errors import XlirError


def _config(config_file: Path | None, eval_datasets: str | None):
    from xlir.validation.config import ValidationConfig

    overrides = {}
    if eval_datasets is not None:
        names = [n.strip() for n in eval_datasets.split(",") if n.strip()]
        overrides["eval_datasets"] = [] if names in ([], ["none"]) else names
    return ValidationConfig.load(config_file, **overrides)


def validate_command(
    paths: list[Path] = typer.Argument(..., help="data files or folders, validated together as one dataset"),
    format: str = typer.Option("auto", "--format", "-f", help="auto, lareqa, jsonl or parquet"),
    lang: str = typer.Option(None, "--lang", help="language of LAReQA files (default: their 'language' field, else the file name)"),
    eval_datasets: str = typer.Option(
        None, "--eval-datasets",
        help="comma-separated evaluation datasets to guard against leakage (names or paths; 'none' for none); "
        "default: the config's (xquad-r,dream)",
    ),
    config: Path = typer.Option(None, "--config", help="thresholds file (YAML or JSON); defaults otherwise"),
    json_report: Path = typer.Option(None, "--json", help="also write the full report (all checks, leakage overlaps) as JSON here"),
    data_docs: Path = typer.Option(None, "--data-docs", help="also build a Great Expectations Data Docs site in this folder"),
) -> None:
    """Check data files against the data contract; exit 0 when fit for training, 1 when not."""
    from xlir.validation.parse import check_format
    from xlir.validation.validate import validate_files

    check_format(format)
    cfg = _config(config, eval_datasets)
    report = validate_files(paths, fmt=format, lang=lang, config=cfg, data_docs_dir=data_docs)
    typer.echo(report.summary(max_examples=min(3, cfg.max_examples)))
    if json_report:
        typer.echo(f"report: {report.write_json(json_report)}")
    if data_docs:
        typer.echo(f"data docs: {Path(data_docs) / 'index.html'}")
    raise typer.Exit(0 if report.passed else 1)


def ingest_command(
    landing: Path = typer.Option(..., "--landing", help="folder users drop data into (a file or a folder per dataset)"),
    store: Path = typer.Option(None, "--store", help="validated, versioned datasets (default: XLIR cache/validated)"),
    quarantine: Path = typer.Option(None, "--quarantine", help="invalid datasets and their reports (default: XLIR cache/quarantine)"),
    archive: Path = typer.Option(None, "--archive", help="where ingested landing files go (default: LANDING/_processed)"),
    config: Path = typer.Option(None, "--config", help="thresholds file (YAML or JSON); defaults otherwise"),
    eval_datasets: str = typer.Option(None, "--eval-datasets", help="comma-separated evaluation datasets (default: the config's)"),
    retry_quarantined: bool = typer.Option(False, "--retry-quarantined", help="validate again content that was quarantined before"),
    quiet_seconds: float = typer.Option(
        None, "--quiet-seconds",
        help="take an entry only once its files have been unchanged this long (default: $XLIR_INGEST_QUIET_SECONDS, "
        "else 30); a ready marker (NAME.done beside it, _SUCCESS inside a folder) takes it at once",
    ),
    strict: bool = typer.Option(False, "--strict", help="exit 1 when anything was quarantined or failed"),
) -> None:
    """Validate new datasets in the landing folder; store valid ones as versioned Parquet, quarantine the rest."""
    from xlir.validation.ingestion import ingest

    if not landing.is_dir():
        raise XlirError(f"landing folder {landing} does not exist")
    result = ingest(
        landing, store=store, quarantine=quarantine, config=_config(config, eval_datasets),
        archive=archive, retry_quarantined=retry_quarantined, quiet_seconds=quiet_seconds,
    )
    typer.echo(result.summary())
    if strict and (result.quarantined or result.errors):
        raise typer.Exit(1)
