"""``train(cfg)``: fine-tune an encoder with mono / cross / hybrid batches.

Reads top to bottom like a sentence-transformers training script:
1. run folder (resume or start), 2. data, 3. model (and the retrieval validation of the held-out
ids), 4. loss, 5. arguments, 6. trainer, 7. train, 8. the selected checkpoint, merged with the base
(WiSE-FT) when asked, saved with the report.

The loss is MultipleNegativesRankingLoss (InfoNCE over cosine similarity with in-batch and one
hard negative per triplet, at ``cfg.scale``), or its GradCache variant when ``mini_batch_size`` is set.
Queries get the model's ``query`` prompt and passages its ``document`` prompt, the same strings
``model.encode(..., prompt_name=...)`` adds in evaluation.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pydantic_core import PydanticUndefined

from xlir.errors import XlirError
from xlir.paths import cache_dir
from xlir.training.config import TrainConfig
from xlir.training.data import TrainingData, prepare_training_data

log = logging.getLogger(__name__)

CONFIG_FILE = "train_config.json"
LOG_FILE = "train_log.jsonl"
RESULT_FILE = "train_result.json"
MODEL_DIR = "model"
CHECKPOINT_DIR = "checkpoints"
VALIDATION_BASE_FILE = "validation_base.json"
SELECTION_FILE = "selection.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


@dataclass
class TrainResult:
    """What a run produced and how it went; ``as_dict()`` is small and JSON-ready (an XCom)."""

    model_dir: str
    output_dir: str
    steps: int
    steps_this_run: int
    final_loss: float | None
    validation_loss: float | None
    best_validation_loss: float | None
    seconds: float
    pairs: int
    pairs_per_second: float
    device: str
    resumed_from_step: int | None
    stopped_early: bool
    hyperparameters: dict = field(default_factory=dict)
    data_versions: dict = field(default_factory=dict)
    selected_step: int | None = None
    """The checkpoint the run returns (``select``); None for the last step."""
    merge_lambda: float | None = None
    """WiSE-FT weight of the fine-tuned model in the returned one (None: not merged)."""
    validation: dict = field(default_factory=dict)
    """``val.*`` retrieval metrics of the returned model on the held-out ids (``val.criterion`` included)."""
    validation_base: dict = field(default_factory=dict)
    """The same metrics of the base encoder: the reference of the criterion."""
    merge_tried: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def default_output_dir(cfg: TrainConfig) -> Path:
    return cache_dir() / "runs" / cfg.run_id()


CHECKPOINT_FILES = ("model.safetensors", "optimizer.pt", "scheduler.pt", "trainer_state.json")
"""What a checkpoint needs to resume from (the trainer writes its state after the weights)."""


def last_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint under ``folder``: every file of ``CHECKPOINT_FILES`` present and not
    empty, and a trainer state that parses. A checkpoint torn by a kill mid-write is skipped (with a
    warning) for the one before it, so a retry resumes instead of failing on it every time."""
    if not folder.is_dir():
        return None
    found = sorted(
        ((int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))),
        reverse=True,
    )
    for step, p in found:
        problem = _checkpoint_problem(p, step)
        if problem is None:
            return p
        log.warning("skipping checkpoint %s: %s; resuming from an earlier one", p, problem)
    return None


def _checkpoint_problem(path: Path, step: int) -> str | None:
    missing = [n for n in CHECKPOINT_FILES if not (path / n).is_file() or (path / n).stat().st_size == 0]
    if missing:
        return f"missing or empty {missing}"
    try:
        state = json.loads((path / "trainer_state.json").read_text())
    except (OSError, ValueError) as e:
        return f"unreadable trainer state ({e})"
    if not isinstance(state, dict) or state.get("global_step") != step:
        return f"trainer state is not that of step {step}"
    return None


def train(cfg: TrainConfig, *, callbacks: list | None = None, show_progress: bool = True) -> TrainResult:
    """Fine-tune ``cfg.base_model`` and save a sentence-transformers folder at ``output_dir/model``.

    One call runs the whole recipe of docs/METHOD.md section 1, so the CLI, the pipeline and the
    benchmarks train the same way: triplets from ``cfg.train_datasets`` with a share of parallel ids
    held out, mono / cross / hybrid batches from ``HybridBatchSampler``, MultipleNegativesRankingLoss
    at ``cfg.scale`` (plus the cross-lingual alignment term when ``cfg.align_weight > 0``), and the
    returned model chosen on the held-out ids (``cfg.select``) and, with ``cfg.merge_with_base``,
    merged with the base encoder in weight space (WiSE-FT).

    The run folder is ``cfg.output_dir``, else ``<cache>/runs/<cfg.run_id()>``. Started again on
    the same folder with the same hyper-parameters, a killed run resumes from its last complete
    checkpoint and ends with the same weights as an uninterrupted one; a finished run returns its
    saved result without training. With ``cfg.resume`` off, the folder's checkpoints, model and
    results are deleted and training starts afresh.

    Args:
        cfg: every setting of the run (``TrainConfig``: base model, data, batch strategy and alpha,
            optimiser, loss, checkpoint selection, merge, bookkeeping).
        callbacks: extra ``transformers.TrainerCallback``s added to the trainer.
        show_progress: show a progress bar with the loss and steps per second.

    Returns:
        A ``TrainResult`` (also written to ``train_result.json``; the selection to
        ``selection.json``): ``model_dir``, total steps and this run's, last training loss and
        validation losses (None under ``select=retrieval``), seconds, ``pairs`` (triplets trained
        on in this run) and pairs per second, device, ``selected_step`` (None: the last step),
        ``merge_lambda`` (None: not merged), ``validation`` and ``validation_base`` (``val.*``
        retrieval metrics of the returned model and of the base encoder, empty unless
        ``select=retrieval``), ``merge_tried``, hyper-parameters and data versions.

    Raises:
        XlirError: the folder holds a run with other hyper-parameters, or the training data changed
            since it was started; the strategy cannot be met (``cross`` with no parallel ids in two
            languages); ``select=retrieval`` without held-out questions, or on a test dataset.

    Example:
        ```python
        from xlir.training import TrainConfig, train

        result = train(TrainConfig(train_datasets=["mlqa-r"], strategy="hybrid", alpha=0.5,
                                   steps=20, checkpoint_every=10))
        result.model_dir                        # load with xlir.models.load_encoder(result.model_dir)
        result.selected_step, result.merge_lambda
        result.validation["val.map.mul"], result.validation_base["val.map.mul"]
        ```
    """
    # 1. run folder: resume, finish, or start afresh
    out = Path(cfg.output_dir or default_output_dir(cfg)).expanduser().resolve()
    ckpt_dir = out / CHECKPOINT_DIR
    hyper = cfg.hyperparameters()
    previous = _read_json(out / CONFIG_FILE)
    resume_from = None
    if cfg.resume and previous is not None:
        _check_same_run(out, previous.get("hyperparameters", {}), hyper)
        done = _read_json(out / RESULT_FILE)
        if done is not None and (out / MODEL_DIR / "modules.json").is_file():
            log.info("%s already holds this finished run; returning its result", out)
            return TrainResult(**done)
        resume_from = last_checkpoint(ckpt_dir)
    if resume_from is None:
        for stale in (ckpt_dir, out / MODEL_DIR):
            shutil.rmtree(stale, ignore_errors=True)
        for stale in (out / LOG_FILE, out / RESULT_FILE):
            stale.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)

    # 2. data: sources, validation split by parallel id, triplets
    data = prepare_training_data(
        cfg.train_datasets, seed=cfg.seed, validation_fraction=cfg.validation_fraction, languages=cfg.languages,
        holdout_languages=cfg.holdout_languages,
    )

    if resume_from is not None and previous.get("data_versions") != data.versions:
        raise XlirError(
            f"the training data changed since {out} was started ({previous.get('data_versions')} -> "
            f"{data.versions}); a resumed run would not match; use another output folder or resume=False"
        )

    from xlir.training.samplers import HybridBatchSampler

    plan = HybridBatchSampler(  # fails here, before the model loads, when the strategy cannot be met
        None, cfg.batch_size, table=data.train, strategy=cfg.strategy, alpha=cfg.alpha, seed=cfg.seed
    )
    if plan.skipped_sources:
        log.warning("%s batches cannot come from %s (one language only)", cfg.strategy, plan.skipped_sources)

    # 3. model
    import torch

    from xlir.models import load_encoder

    device = "cuda" if torch.cuda.is_available() else "cpu"
    freeze = cfg.freeze_word_embeddings if cfg.freeze_word_embeddings is not None else device == "cpu"
    model = load_encoder(cfg.base_model, max_seq_length=cfg.max_seq_length)
    model.model_card_data.local_files_only = True  # never ask the hub while saving
    validation_precision = _validation_precision(cfg, device, previous if resume_from is not None else None, out)
    if cfg.train_precision == "bf16" and device == "cpu":
        from xlir.models.runtime import check_precision

        check_precision("bf16")  # emulated bf16 would be slower than fp32: refused with the reason
    frozen = freeze_word_embeddings(model) if freeze else 0

    _write_json(
        out / CONFIG_FILE,
        {
            "config": cfg.model_dump(mode="json"),
            "hyperparameters": hyper,
            "data_versions": data.versions,
            "data_counts": data.counts,
            "triplets": {"train": len(data.train), "validation": len(data.validation or [])},
            "languages": data.train.languages,
            "source_batch_share": dict(zip(data.train.sources, [round(float(p), 6) for p in plan.source_p])),
            "device": device,
            "torch_threads": torch.get_num_threads(),
            "validation_precision": validation_precision,
            "frozen_parameters": frozen,
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "prompts": dict(model.prompts),
            "versions": _library_versions(),
        },
    )

    # 3b. retrieval validation on the held-out ids, and the base encoder's score (its reference)
    validation, base_val = None, {}
    if cfg.select == "retrieval":
        from xlir.training.selection import RetrievalValidation

        validation = RetrievalValidation.from_training_data(
            data, max_seq_length=cfg.max_seq_length, precision=validation_precision,
            train_languages=data.train.languages if cfg.holdout_languages else None)
        if validation is None:
            raise XlirError("select=retrieval needs held-out questions, and the validation split is empty")
        base_val = _read_json(out / VALIDATION_BASE_FILE) if resume_from is not None else None
        if not base_val:
            from xlir.models import model_fingerprint
            from xlir.training.selection import val_to_trainer_metrics

            base_val = validation.score(model, model_fingerprint(cfg.base_model))
            _write_json(out / VALIDATION_BASE_FILE, base_val)
            with open(out / LOG_FILE, "a") as f:  # step 0 of the validation curve: the base encoder
                f.write(json.dumps({"step": 0, "time": round(time.time(), 3), **val_to_trainer_metrics(base_val)}) + "\n")
        log.info("retrieval validation (%s): %s; base encoder %s", validation_precision, validation.size, base_val)

    # 4-6. loss, arguments, trainer
    trainer, sampler_of = build_trainer(
        cfg, data, model, checkpoint_dir=ckpt_dir, device=device, validation=validation, base_validation=base_val
    )
    log_path = out / LOG_FILE
    start_step = 0
    if resume_from is not None:
        start_step = int(_CHECKPOINT.match(resume_from.name).group(1))
        log.info("resuming from checkpoint %s: step %d of %d", resume_from, start_step, cfg.steps)
        _truncate_log(log_path, start_step)
    trainer.add_callback(_JsonlLog(log_path))
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(ProgressCallback)  # ours shows loss and steps/s without printing dicts
    trainer.remove_callback(PrinterCallback)
    if show_progress:
        trainer.add_callback(_ProgressBar())
    for cb in callbacks or []:
        trainer.add_callback(cb)

    # 7. train
    from xlir.models.slots import compute_slot

    with compute_slot(f"training {out.name} (pid {os.getpid()})"):  # its validations run inside the slot
        t0 = time.perf_counter()
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        seconds = time.perf_counter() - t0
    state = trainer.state

    # 8. the selected checkpoint (loaded by the trainer), merged with the base when asked; save; report
    selected_step, selected_val = _selected(cfg, state)
    merge = _merge(cfg, trainer.model, validation, base_val, selected_val)
    model_dir = out / MODEL_DIR
    _save_model(trainer.model, model_dir)
    sampler = sampler_of()
    pairs = sum(
        len(sampler.plan(step % len(sampler), step // len(sampler)).rows)
        for step in range(start_step, state.global_step)
    )
    history = state.log_history
    losses = [h["loss"] for h in history if "loss" in h]
    evals = [h["eval_loss"] for h in history if "eval_loss" in h]
    result = TrainResult(
        model_dir=str(model_dir),
        output_dir=str(out),
        steps=int(state.global_step),
        steps_this_run=int(state.global_step - start_step),
        final_loss=float(losses[-1]) if losses else None,
        validation_loss=float(evals[-1]) if evals else None,
        best_validation_loss=float(min(evals)) if evals else None,
        seconds=round(seconds, 3),
        pairs=int(pairs),
        pairs_per_second=round(pairs / seconds, 3) if seconds > 0 else 0.0,
        device=device,
        resumed_from_step=start_step if resume_from is not None else None,
        stopped_early=bool(state.global_step < cfg.steps),
        hyperparameters=hyper,
        data_versions=data.versions,
        selected_step=selected_step,
        merge_lambda=merge.get("lambda"),
        validation=merge.get("validation", selected_val),
        validation_base=base_val,
        merge_tried=merge.get("tried", []),
    )
    _write_json(out / SELECTION_FILE, {"select": cfg.select, "selected_step": selected_step, "merge": merge,
                                       "validation_base": base_val})
    _write_json(out / RESULT_FILE, result.as_dict())
    return result


def _selected(cfg: TrainConfig, state) -> tuple[int | None, dict]:
    """The step of the checkpoint the trainer loaded at the end, and its ``val.*`` metrics."""
    from xlir.training.selection import trainer_metrics_to_val

    if cfg.select == "last" or not state.best_model_checkpoint:
        return None, {}
    step = int(_CHECKPOINT.match(Path(state.best_model_checkpoint).name).group(1))
    record = next((h for h in state.log_history if h.get("step") == step and any(k.startswith("eval_") for k in h)), {})
    return step, trainer_metrics_to_val(record)


def _merge(cfg: TrainConfig, model, validation, base_val: dict, selected_val: dict) -> dict:
    """WiSE-FT: merge ``model`` (in place) with the base encoder; returns lambda, the tried grid, and
    the returned model's validation metrics (``{}`` when not merged)."""
    if cfg.merge_with_base == "none":
        return {}
    from xlir.models import load_encoder
    from xlir.training.selection import PREFIX, choose_merge, criterion, merged_state

    base_state = load_encoder(cfg.base_model, max_seq_length=cfg.max_seq_length).state_dict()
    base_mo = base_val.get(f"{PREFIX}.map.mo", 0.0)
    base_mo_unseen = base_val.get(f"{PREFIX}.map.mo.unseen")
    if cfg.merge_with_base == "auto":
        known = {1.0: {k: v for k, v in selected_val.items() if k != f"{PREFIX}.criterion"}} if selected_val else None
        choice = choose_merge(model, base_state, validation, cfg.merge_grid, base_mo=base_mo,
                              mo_tolerance=cfg.select_mo_tolerance, known=known, early_stop=cfg.merge_early_stop,
                              tolerance=cfg.merge_tolerance, base_mo_unseen=base_mo_unseen)
        best = next(r for r in choice.tried if r["lambda"] == choice.lam)
        log.info("WiSE-FT: lambda %s chosen on validation (%s)", choice.lam, choice.tried)
        return {"lambda": choice.lam, "tried": choice.tried, "validation": {k: v for k, v in best.items() if k != "lambda"}}
    lam = float(cfg.merge_with_base)
    model.load_state_dict(merged_state(base_state, model.state_dict(), lam))
    metrics = validation.score(model) if validation is not None else {}
    if metrics:
        metrics[f"{PREFIX}.criterion"] = criterion(metrics, base_mo, cfg.select_mo_tolerance, base_mo_unseen)
    return {"lambda": lam, "validation": metrics}


def build_trainer(
    cfg: TrainConfig,
    data: TrainingData,
    model,
    *,
    checkpoint_dir: Path,
    device: str = "cpu",
    batch_sampler=None,
    save_checkpoints: bool = True,
    validation=None,
    base_validation: dict | None = None,
):
    """A ``SentenceTransformerTrainer`` wired with the strategy's batch sampler.

    Returns ``(trainer, sampler_of)``; ``sampler_of()`` gives the training ``HybridBatchSampler``
    once the trainer has built it. ``batch_sampler`` replaces it (the benchmark's baseline);
    ``save_checkpoints=False`` writes nothing (the benchmark's timed runs). ``validation`` (a
    ``RetrievalValidation``) scores each validation step, and the checkpoint with the best criterion
    is loaded at the end (``select=retrieval``); ``base_validation`` holds the base encoder's score.
    """
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MultipleNegativesRankingLoss,
    )
    from transformers import EarlyStoppingCallback

    from xlir.training.samplers import BatchSamplerFactory, HybridBatchSampler

    cuda = device == "cuda"
    cpu_bf16 = not cuda and cfg.train_precision == "bf16"  # the forward under bf16 autocast (accelerate)

    # 4. loss
    if cfg.mini_batch_size:
        loss = CachedMultipleNegativesRankingLoss(model, scale=cfg.scale, mini_batch_size=cfg.mini_batch_size)
    elif cfg.length_groups > 1 or cfg.align_weight > 0:
        from xlir.training.losses import LengthGroupedMNRLoss

        teacher = None
        if cfg.align_weight > 0:  # the base encoder, frozen: built before any checkpoint is loaded
            import copy

            teacher = copy.deepcopy(model)
            if cpu_bf16:  # its targets as the student's forward: bf16
                from xlir.models.runtime import autocast_bf16

                teacher = autocast_bf16(teacher)
        loss = LengthGroupedMNRLoss(model, scale=cfg.scale, groups=cfg.length_groups, teacher=teacher,
                                    align_weight=cfg.align_weight)
    else:
        loss = MultipleNegativesRankingLoss(model, scale=cfg.scale)

    # datasets hold only the text columns (and the pivot texts of the alignment term); the sampler holds
    # the metadata
    pivot = cfg.align_weight > 0
    train_ds = data.train.to_dataset(pivot=pivot)
    wants_loss = cfg.select != "retrieval"  # the retrieval validation replaces the (slower) validation loss
    val_ds = (data.validation.to_dataset(pivot=pivot)
              if wants_loss and data.validation is not None and cfg.validation_fraction > 0 else None)
    evaluator = None
    if validation is not None:
        from xlir.training.selection import PREFIX, RetrievalValidationEvaluator

        base = base_validation or {}
        evaluator = RetrievalValidationEvaluator(validation, base.get(f"{PREFIX}.map.mo", 0.0), cfg.select_mo_tolerance,
                                                 base.get(f"{PREFIX}.map.mo.unseen"))
    tables = {"train": (data.train, {})}
    if val_ds is not None:
        tables["validation"] = (data.validation, {"seed": cfg.seed})  # fixed batches at every validation
    factory = BatchSamplerFactory(tables, strategy=cfg.strategy, alpha=cfg.alpha)

    def sampler_of():
        if "train" in factory.built:
            return factory.built["train"]
        return HybridBatchSampler(
            train_ds, cfg.batch_size, seed=cfg.seed, table=data.train, strategy=cfg.strategy, alpha=cfg.alpha
        )

    # 5. arguments
    query = model.prompts.get("query", "query: ")
    document = model.prompts.get("document", "passage: ")
    import torch

    bf16 = torch.cuda.is_bf16_supported() if cuda else cpu_bf16
    validating = val_ds is not None or evaluator is not None
    select = {"retrieval": "eval_retrieval_criterion", "loss": "eval_loss"}.get(cfg.select) if validating else None
    early = cfg.early_stopping_patience is not None and select is not None
    schedule = {"constant": "constant_with_warmup"}.get(cfg.lr_schedule, cfg.lr_schedule)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(checkpoint_dir),
        max_steps=cfg.steps,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        learning_rate=cfg.lr,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_ratio,  # a float in [0, 1) is a ratio of max_steps
        lr_scheduler_type=schedule,
        optim="adamw_torch",
        seed=cfg.seed,
        data_seed=cfg.seed,
        batch_sampler=batch_sampler or factory,
        prompts={"anchor": query, "positive": document, "negative": document, "anchor_pivot": query,
                 "positive_pivot": document},
        save_strategy="steps" if save_checkpoints else "no",
        save_steps=cfg.checkpoint_every,
        save_total_limit=cfg.keep_checkpoints,
        eval_strategy="steps" if validating else "no",
        eval_steps=cfg.validation_every if validating else None,
        load_best_model_at_end=select is not None and save_checkpoints,
        metric_for_best_model=select,
        greater_is_better=None if select is None else cfg.select == "retrieval",
        restore_callback_states_from_checkpoint=True,
        logging_steps=cfg.log_every,
        report_to="none",
        disable_tqdm=False,
        use_cpu=not cuda,
        bf16=bf16,
        fp16=cuda and not bf16,
        dataloader_num_workers=0,
        dataloader_pin_memory=cuda,
        dataloader_drop_last=False,
    )

    # 6. trainer
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        evaluator=evaluator,
        loss=loss,
        callbacks=[EarlyStoppingCallback(cfg.early_stopping_patience)] if early else None,
    )
    return trainer, sampler_of


def freeze_word_embeddings(model) -> int:
    """Stop gradients to every word-embedding matrix of ``model``; returns the frozen parameter count."""
    frozen = 0
    for module in model.modules():
        auto = getattr(module, "auto_model", None)
        if auto is None or not hasattr(auto, "get_input_embeddings"):
            continue
        emb = auto.get_input_embeddings()
        if emb is not None and emb.weight.requires_grad:
            emb.weight.requires_grad_(False)
            frozen += emb.weight.numel()
    return frozen


def _save_model(model, target: Path) -> None:
    """Save atomically: a reader never sees a half-written model folder."""
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(str(tmp))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


ADDED_FIELDS = {"align_weight": 0.0, "holdout_languages": None, "train_precision": "fp32"}
"""Fields added after run folders were first written, with the value a folder written before them ran
with (not always today's default: the alignment term did not exist, so such runs had none)."""


def _validation_precision(cfg: TrainConfig, device: str, started: dict | None, out: Path) -> str | None:
    """The retrieval validation's precision (``auto`` resolved on this machine); a resumed run keeps the
    one it started with, so its checkpoints and its base reference are scored alike."""
    from xlir.models.runtime import resolve_precision

    if cfg.select != "retrieval":
        return None
    before = (started or {}).get("validation_precision")
    if not before:
        return resolve_precision(cfg.validation_precision, device)
    try:
        return resolve_precision(before, device)
    except XlirError as e:
        raise XlirError(f"{out} was started with {before} validation, which this machine cannot run ({e}); resume it "
                        "on a machine like the first, or start afresh (resume=False)") from None


def _check_same_run(out: Path, before: dict, now: dict) -> None:
    # a field added since the folder was written counts as what it ran with there, so such folders still resume
    defaults = {k: f.default for k, f in TrainConfig.model_fields.items() if f.default is not PydanticUndefined}
    defaults.update(ADDED_FIELDS)
    before = {**{k: v for k, v in defaults.items() if k in now}, **before}
    diff = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
    if diff:
        changes = ", ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in diff)
        raise XlirError(
            f"{out} holds a run with other settings ({changes}); use another output folder, or "
            "resume=False (--no-resume) to start this one afresh there"
        )


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines past ``step`` (logged by the killed run after its last checkpoint)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except ValueError:
            continue
    path.write_text("".join(line + "\n" for line in keep))


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(path)


def _library_versions() -> dict:
    import sentence_transformers
    import torch
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
    }


def _callback_base():
    from transformers import TrainerCallback

    return TrainerCallback


class _JsonlLog(_callback_base()):
    """Appends every log record (training loss, learning rate, validation loss) to a JSONL file."""

    def __init__(self, path: Path):
        self.path = path

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or not state.is_world_process_zero:
            return
        record = {"step": int(state.global_step), "time": round(time.time(), 3), **logs}
        with open(self.path, "a") as f:
            f.write(json.dumps(record, default=float) + "\n")


class _ProgressBar(_callback_base()):
    """One tqdm bar: steps, steps/s, and the latest loss, validation loss and learning rate."""

    def __init__(self):
        self.bar = None
        self.postfix: dict[str, str] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        from tqdm.auto import tqdm

        if state.is_world_process_zero:
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="train", unit="step", dynamic_ncols=True)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is None or not logs:
            return
        for key, name, fmt in (("loss", "loss", "{:.4f}"), ("eval_loss", "val", "{:.4f}"), ("learning_rate", "lr", "{:.2e}")):
            if key in logs:
                self.postfix[name] = fmt.format(logs[key])
        self.bar.set_postfix(self.postfix, refresh=False)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
