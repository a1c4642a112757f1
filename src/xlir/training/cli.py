"""``xlir train``: fine-tune an encoder with mono / cross / hybrid batches.

Options mirror ``TrainConfig`` one to one; an option left out takes the config's default (the
defaults live in ``xlir.training.config`` only). Bad values become one ``XlirError`` line.
Registered in ``xlir.cli`` with ``app.command("train")(train_command)``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from xlir.training.config import TrainConfig

_F = TrainConfig.model_fields


def _help(name: str) -> str:
    f = _F[name]
    default = f.default_factory() if f.default_factory is not None else f.default
    if isinstance(default, list):
        default = ",".join(map(str, default))
    return f"{f.description} (default: {default})"


def train_command(
    base_model: str = typer.Option(None, help=_help("base_model")),
    train_datasets: list[str] = typer.Option(
        None, "--train-datasets", "--train-dataset", help=_help("train_datasets") + "; comma-separated or repeated"
    ),
    languages: str = typer.Option(None, help=_help("languages") + "; comma-separated"),
    holdout_languages: str = typer.Option(None, help=_help("holdout_languages") + "; comma-separated"),
    strategy: str = typer.Option(None, help=_help("strategy")),
    alpha: float = typer.Option(None, help=_help("alpha")),
    steps: int = typer.Option(None, help=_help("steps")),
    batch_size: int = typer.Option(None, help=_help("batch_size")),
    mini_batch_size: int = typer.Option(None, help=_help("mini_batch_size")),
    length_groups: int = typer.Option(None, help=_help("length_groups")),
    lr: float = typer.Option(None, help=_help("lr")),
    weight_decay: float = typer.Option(None, help=_help("weight_decay")),
    lr_schedule: str = typer.Option(None, help=_help("lr_schedule")),
    warmup_ratio: float = typer.Option(None, help=_help("warmup_ratio")),
    scale: float = typer.Option(None, help=_help("scale")),
    align_weight: float = typer.Option(None, help=_help("align_weight")),
    max_seq_length: int = typer.Option(None, help=_help("max_seq_length")),
    seed: int = typer.Option(None, help=_help("seed")),
    freeze_word_embeddings: bool = typer.Option(
        None, "--freeze-word-embeddings/--train-word-embeddings", help=_help("freeze_word_embeddings")
    ),
    validation_fraction: float = typer.Option(None, help=_help("validation_fraction")),
    checkpoint_every: int = typer.Option(None, help=_help("checkpoint_every")),
    eval_every: int = typer.Option(None, help=_help("eval_every")),
    select: str = typer.Option(None, help=_help("select")),
    select_mo_tolerance: float = typer.Option(None, help=_help("select_mo_tolerance")),
    merge_with_base: str = typer.Option(None, help=_help("merge_with_base")),
    merge_grid: str = typer.Option(None, help=_help("merge_grid") + "; comma-separated"),
    merge_early_stop: bool = typer.Option(None, "--merge-early-stop/--merge-full-grid", help=_help("merge_early_stop")),
    merge_tolerance: float = typer.Option(None, help=_help("merge_tolerance")),
    train_precision: str = typer.Option(None, help=_help("train_precision")),
    validation_precision: str = typer.Option(None, help=_help("validation_precision")),
    early_stopping_patience: int = typer.Option(None, help=_help("early_stopping_patience")),
    output: Path = typer.Option(None, "--output", "-o", help=_help("output_dir")),
    resume: bool = typer.Option(None, "--resume/--no-resume", help=_help("resume")),
    keep_checkpoints: int = typer.Option(None, help=_help("keep_checkpoints")),
    log_every: int = typer.Option(None, help=_help("log_every")),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show a progress bar"),
) -> None:
    """Fine-tune an encoder on parallel QA data with mono, cross or hybrid batches."""
    given = {
        "base_model": base_model,
        "train_datasets": train_datasets or None,
        "languages": languages,
        "holdout_languages": holdout_languages,
        "strategy": strategy,
        "alpha": alpha,
        "steps": steps,
        "batch_size": batch_size,
        "mini_batch_size": mini_batch_size,
        "length_groups": length_groups,
        "lr": lr,
        "weight_decay": weight_decay,
        "lr_schedule": lr_schedule,
        "warmup_ratio": warmup_ratio,
        "scale": scale,
        "align_weight": align_weight,
        "max_seq_length": max_seq_length,
        "seed": seed,
        "freeze_word_embeddings": freeze_word_embeddings,
        "validation_fraction": validation_fraction,
        "checkpoint_every": checkpoint_every,
        "eval_every": eval_every,
        "select": select,
        "select_mo_tolerance": select_mo_tolerance,
        "merge_with_base": merge_with_base,
        "merge_grid": [x for x in merge_grid.split(",") if x.strip()] if merge_grid else None,
        "merge_early_stop": merge_early_stop,
        "merge_tolerance": merge_tolerance,
        "train_precision": train_precision,
        "validation_precision": validation_precision,
        "early_stopping_patience": early_stopping_patience,
        "output_dir": output,
        "resume": resume,
        "keep_checkpoints": keep_checkpoints,
        "log_every": log_every,
    }
    cfg = config_from_options({k: v for k, v in given.items() if v is not None})

    from rich.console import Console

    from xlir.models.runtime import torch_threads
    from xlir.training.trainer import train

    result = train(cfg, show_progress=progress)
    console = Console()
    val = f"{result.validation_loss:.4f}" if result.validation_loss is not None else "n/a"
    loss = f"{result.final_loss:.4f}" if result.final_loss is not None else "n/a"
    resumed = f" (resumed at step {result.resumed_from_step})" if result.resumed_from_step is not None else ""
    console.print(
        f"{cfg.strategy} training: {result.steps} steps{resumed}, loss {loss}, validation loss {val}, "
        f"{result.pairs_per_second:.1f} pairs/s on {result.device} ({torch_threads()} torch threads)"
    )
    if result.validation:
        v, b = result.validation, result.validation_base
        chosen = f"step {result.selected_step}" if result.selected_step is not None else "last step"
        merged = f", merged with the base at lambda {result.merge_lambda:g}" if result.merge_lambda is not None else ""
        console.print(
            f"returned: {chosen}{merged}; validation Mo./Cr./Mul. mAP "
            f"{v['val.map.mo']:.3f}/{v['val.map.cr']:.3f}/{v['val.map.mul']:.3f} (base "
            f"{b.get('val.map.mo', float('nan')):.3f}/{b.get('val.map.cr', float('nan')):.3f}/"
            f"{b.get('val.map.mul', float('nan')):.3f}), rank distance {v['val.rank_distance']:.0f}"
        )
    console.print(f"model: {result.model_dir}")


def config_from_options(options: dict) -> TrainConfig:
    """``TrainConfig(**options)``, with a validation failure as one readable ``XlirError`` line."""
    from pydantic import ValidationError

    from xlir.errors import XlirError, options_error

    try:
        return TrainConfig(**options)
    except ValidationError as e:
        raise XlirError(options_error(e, "training")) from None
