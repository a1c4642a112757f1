"""``xlir model``: prepare base encoders, embed a few texts, list what ships with xlir.

torch and sentence-transformers load inside the commands, so ``xlir --help`` stays fast.
User mistakes raise ``ModelSpecError``; the main CLI prints them as ``error: ...`` (exit 2).
"""

from __future__ import annotations

import json
import time

import typer

app = typer.Typer(no_args_is_help=True)

_SPEC_HELP = "bundled:NAME, tiny[:SEED], a model folder, or a Hugging Face hub id."


@app.command()
def prepare(spec: str = typer.Argument(..., help=_SPEC_HELP)) -> None:
    """Build or locate SPEC; print its folder, parameter count, embedding size and time taken."""
    from xlir.models import load_encoder, prepare_model

    t0 = time.perf_counter()
    folder = prepare_model(spec)
    t1 = time.perf_counter()
    model = load_encoder(spec, device="cpu")
    t2 = time.perf_counter()
    params = sum(p.numel() for n, p in model.named_parameters() if "pooler." not in n)  # pooler unused
    typer.echo(f"folder:     {folder}")
    typer.echo(f"parameters: {params:,}")
    typer.echo(f"dimension:  {model.get_embedding_dimension()}")
    typer.echo(f"prompts:    {model.prompts}")
    typer.echo(f"time:       prepare {t1 - t0:.2f} s, load {t2 - t1:.2f} s")


@app.command()
def embed(
    spec: str = typer.Argument(..., help=_SPEC_HELP),
    texts: list[str] = typer.Argument(..., help="Texts to embed."),
    query: bool = typer.Option(False, "--query/--passage", help="Prefix as queries or as passages."),
    as_json: bool = typer.Option(False, "--json", help="Print full vectors as JSON."),
    device: str = typer.Option("cpu", help="torch device."),
    max_seq_length: int | None = typer.Option(None, help="Truncate inputs to this many tokens."),
) -> None:
    """Embed TEXTS with SPEC; print dimension, norm and the first values of each vector."""
    from xlir.models import load_encoder

    model = load_encoder(spec, device=device, max_seq_length=max_seq_length)
    enc = model.encode_query if query else model.encode_document
    vecs = enc(list(texts), convert_to_numpy=True)
    if as_json:
        out = {
            "spec": spec,
            "prompt": model.prompts["query" if query else "document"],
            "dim": int(vecs.shape[1]),
            "embeddings": [[round(float(x), 7) for x in v] for v in vecs],
        }
        typer.echo(json.dumps(out))
        return
    for text, v in zip(texts, vecs):
        head = " ".join(f"{x:+.4f}" for x in v[:6])
        typer.echo(f"dim={v.shape[0]} norm={float((v**2).sum()) ** 0.5:.4f} [{head} ...]  {text!r}")


@app.command("list")
def list_models() -> None:
    """The bundled encoders (built offline from pip packages) and the other spec forms."""
    from xlir.models import BUNDLED_MODELS

    for name, m in BUNDLED_MODELS.items():
        typer.echo(f"bundled:{name}\n    {m.description}")
    typer.echo("tiny[:SEED]\n    tiny random BERT (32-dim, byte-level tokenizer) for tests and smoke runs")
    typer.echo("PATH | ORG/NAME\n    a local model folder, or a Hugging Face hub id (needs the hub or its cache)")
