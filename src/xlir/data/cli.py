"""``xlir data``: list, describe and fetch the named datasets."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(no_args_is_help=True)
console = Console()


@app.command("list")
def list_datasets() -> None:
    """List the named datasets with their origin and license."""
    from xlir.data.registry import SOURCES

    table = Table("name", "description", "license")
    for name, spec in sorted(SOURCES.items()):
        table.add_row(name, spec["description"], spec["license"])
    console.print(table)


@app.command()
def describe(
    name: str = typer.Argument(..., help="dataset name: xquad-r, mlqa-r or dream"),
    split: str = typer.Option(None, help="split, for datasets that have several (dream)"),
) -> None:
    """Print per-language question and candidate counts of a dataset."""
    from xlir.data import load_dataset

    ds = load_dataset(name, split=split)
    counts = ds.describe()
    table = Table("lang", "questions", "candidates", "in >=2 languages", title=f"{ds.name} (version {ds.version})")
    for row in counts.itertuples(index=False):
        table.add_row(row.lang, str(row.questions), str(row.candidates), str(row.parallel))
    table.add_row("all", str(counts.questions.sum()), str(counts.candidates.sum()), str(counts.parallel.sum()), style="bold")
    console.print(table)
    console.print(f"license: {ds.meta['license']}")


@app.command()
def fetch(
    names: list[str] = typer.Argument(None, help="datasets to fetch (default: all)"),
) -> None:
    """Make every file of the datasets available locally, sha256-checked."""
    from xlir.data.registry import dataset_names, resolve, source

    for name in names or dataset_names():
        for filename in source(name)["files"]:
            path = resolve(name, filename)
            console.print(f"{name}/{filename}: {path}")


@app.command()
def path(name: str = typer.Argument(..., help="dataset name")) -> None:
    """Print the local folder holding a dataset's files (fetching them if needed)."""
    from xlir.data.registry import resolve, source

    folders = {resolve(name, f).parent for f in source(name)["files"]}
    for folder in sorted(folders):
        typer.echo(folder)
