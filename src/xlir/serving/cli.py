"""``xlir serve`` and ``xlir search``: the registered encoder (the champion by default) at work.

Heavy libraries load inside the commands. User mistakes (no such alias, an unreadable or empty
corpus, a busy port) raise ``XlirError``; the main CLI prints them as one ``error: ...`` line (exit 2).
"""

from __future__ import annotations

import json
import sys

import typer

from xlir.registry.cli import _uri_option
from xlir.serving.serve import DEFAULT_URI

_MODEL_HELP = ("models:/NAME@ALIAS (resolved when the command starts), models:/NAME/VERSION, or a base-model spec "
               "(bundled:NAME, tiny, a model folder)")


def serve_command(
    model: str = typer.Option(DEFAULT_URI, "--model", help="models:/NAME@ALIAS or models:/NAME/VERSION"),
    port: int = typer.Option(5001, min=0, max=65535, help="port on 127.0.0.1 (0: any free port)"),
    tracking_uri: str = _uri_option(),
) -> None:
    """Serve the registered encoder over HTTP on 127.0.0.1 (MLflow's scoring server; stop with Ctrl-C).

    POST /invocations {"inputs": [TEXT, ...], "params": {"prompt_name": "query"}} embeds questions;
    "prompt_name": "document" embeds passages. The alias is read once, at start: restart to serve a new champion.
    """
    from xlir.serving.serve import serve

    code = serve(model, port, tracking_uri=tracking_uri, echo=typer.echo)
    raise typer.Exit(code)


def search_command(
    questions: list[str] = typer.Argument(..., help="one or more questions"),
    model: str = typer.Option(DEFAULT_URI, "--model", help=_MODEL_HELP),
    corpus: str = typer.Option(..., "--corpus", help="UTF-8 file: one passage per line, or .jsonl with a \"text\" "
                                                      "(and optional \"id\") field per line"),
    k: int = typer.Option(10, "-k", "--top-k", min=1, help="passages to return per question"),
    max_seq_length: int | None = typer.Option(None, min=8, help="truncate passages and questions to this many tokens "
                                                                  "(default: the model's own)"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
    tracking_uri: str = _uri_option(),
) -> None:
    """The top k passages of a corpus for each question, by the champion (FAISS, exact inner product).

    The corpus's index is cached per model version and corpus content: a second search is one query encoding.
    """
    from xlir.serving.search import search

    result = search(model, corpus, questions, k=k, max_seq_length=max_seq_length, tracking_uri=tracking_uri,
                    show_progress=sys.stderr.isatty())
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
        return
    how = "cached" if result.index_cached else "built"
    typer.echo(f"model {result.model}; corpus {result.corpus}: {result.passages} passages (index {how})", err=True)
    for question, hits in result.hits.items():
        typer.echo(f"\n{question}")
        for h in hits:
            text = h.text if len(h.text) <= 160 else h.text[:157] + "..."
            typer.echo(f"{h.rank:>4}  {h.score:.4f}  [{h.id}]  {text}")


__all__ = ["search_command", "serve_command"]
