"""``xlir evaluate``: one model, one dataset, a readable summary and a results folder."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from xlir.config import DEFAULT_BASE_MODEL, EvalConfig

console = Console()


def evaluate_command(
    model: str = typer.Option(DEFAULT_BASE_MODEL, help="base-model spec, a trained model folder, or 'bm25'"),
    dataset: str = typer.Option("xquad-r", help="xquad-r, mlqa-r or dream"),
    split: str = typer.Option(None, help="split where a dataset has several (dream: test)"),
    max_questions_per_lang: int = typer.Option(None, min=1, help="seeded question subset per language; full pool"),
    seed: int = typer.Option(0, help="seed of the question subset"),
    candidate_text: str = typer.Option("sentence", help="'sentence' or 'sentence+paragraph'"),
    max_seq_length: int = typer.Option(256, help="tokens per text"),
    batch_size: int = typer.Option(64, help="texts per encoding batch"),
    precision: str = typer.Option("fp32", help="fp32, or int8: the labelled fast path (~1.3x on CPU) for exploration; "
                                   "the gates never use it"),
    train_languages: str = typer.Option(None, help="comma-separated languages seen in training"),
    output: Path = typer.Option(None, "--output", "-o", help="results folder"),
) -> None:
    """Zero-shot LAReQA evaluation: mAP per language pair, Mo./Cr./Mul., rank distance."""
    from pydantic import ValidationError

    from xlir.errors import XlirError
    from xlir.evaluation import evaluate

    try:
        cfg = EvalConfig(
            model=model, dataset=dataset, split=split, max_questions_per_lang=max_questions_per_lang,
            seed=seed, candidate_text=candidate_text, max_seq_length=max_seq_length, batch_size=batch_size,
            precision=precision,
            train_languages=train_languages.split(",") if train_languages else None, output_dir=output,
        )
    except ValidationError as e:
        raise XlirError("; ".join(f"--{'-'.join(str(p) for p in err['loc']).replace('_', '-')}: {err['msg']}" for err in e.errors())) from None
    result = evaluate(cfg)
    print_summary(result)


def print_summary(result) -> None:
    info, m = result.info, result.metrics
    prefix = next(iter(m)).split(".")[0]
    precision = info.get("precision", "fp32")
    label = "" if precision == "fp32" else f" | {precision.upper()} FAST PATH (not for gating)"
    table = Table(title=f"{info['dataset']} | {info['model']} | {info['questions']} questions, {info['candidates']} candidates{label}")
    for col in result.per_language.columns:
        table.add_column(col, justify="left" if col == "lang" else "right")
    for row in result.per_language.itertuples(index=False):
        table.add_row(row[0], *(f"{v:.3f}" if col != "rank distance" else f"{v:.1f}" for col, v in zip(result.per_language.columns[1:], row[1:])))
    if len(result.per_language) > 1:
        table.add_row(
            "macro", f"{m.get(prefix + '.map.mo', float('nan')):.3f}", f"{m.get(prefix + '.map.cr', float('nan')):.3f}",
            f"{m[prefix + '.map.mul']:.3f}", f"{m[prefix + '.r10.mul']:.3f}", f"{m[prefix + '.rank_distance']:.1f}", style="bold",
        )
    console.print(table)
    threads = f", {info['torch_threads']} torch threads" if info.get("torch_threads") else ""
    console.print(f"encode {info['encode_seconds']:.1f}s (cached: {info.get('embeddings_cached')}{threads}), "
                  f"metrics {info['metric_seconds']:.1f}s")
    console.print(f"results: {result.output_dir}")
