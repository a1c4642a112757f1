"""``xlir evaluate``: one model, one dataset, a readable summary and a results folder."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from xlir.evaluation.config import EvalConfig

console = Console()


def _help(name: str) -> str:
    f = EvalConfig.model_fields[name]
    return f"{f.description} (default: {f.default})"


def evaluate_command(
    model: str = typer.Option(None, help=_help("model")),
    dataset: str = typer.Option(None, help=_help("dataset")),
    split: str = typer.Option(None, help=_help("split")),
    max_questions_per_lang: int = typer.Option(None, help=_help("max_questions_per_lang")),
    seed: int = typer.Option(None, help=_help("seed")),
    candidate_text: str = typer.Option(None, help=_help("candidate_text")),
    max_seq_length: int = typer.Option(None, help=_help("max_seq_length")),
    batch_size: int = typer.Option(None, help=_help("batch_size")),
    precision: str = typer.Option(None, help=_help("precision") + "; the labelled fast path, the gates never use it"),
    train_languages: str = typer.Option(None, help=_help("train_languages") + "; comma-separated"),
    top_k: int = typer.Option(None, help=_help("top_k")),
    output: Path = typer.Option(None, "--output", "-o", help=_help("output_dir")),
) -> None:
    """Zero-shot LAReQA evaluation: mAP per language pair, Mo./Cr./Mul., rank distance."""
    from xlir.evaluation import evaluate

    given = {"model": model, "dataset": dataset, "split": split, "max_questions_per_lang": max_questions_per_lang,
             "seed": seed, "candidate_text": candidate_text, "max_seq_length": max_seq_length,
             "batch_size": batch_size, "precision": precision,
             "train_languages": train_languages.split(",") if train_languages else None, "top_k": top_k,
             "output_dir": output}
    result = evaluate(eval_config_from_options({k: v for k, v in given.items() if v is not None}))
    print_summary(result)


def eval_config_from_options(options: dict) -> EvalConfig:
    """``EvalConfig(**options)`` (options left out take the config's defaults), a validation failure as one
    readable ``XlirError`` line."""
    from pydantic import ValidationError

    from xlir.errors import XlirError, options_error

    try:
        return EvalConfig(**options)
    except ValidationError as e:
        raise XlirError(options_error(e, "evaluation")) from None


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
