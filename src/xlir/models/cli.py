"""``xlir model``: placeholder until the model layer lands."""

import typer

app = typer.Typer(no_args_is_help=True)
