"""``TrainConfig``: every knob of one fine-tuning run, with its default, bounds and meaning.

One typed object shared by the CLI, the Airflow params and the tests (defaults live here only).
The paper's hyper-parameters (arXiv 2408.10536): AdamW, lr 3e-5, weight decay 0.01, batch 100 on
an A100; our CPU default is batch 32 (see docs/METHOD.md section 1 and 5), and the pipeline's 20-step
default run uses lr 1e-4, chosen for that budget on the MLQA-R validation (docs/RESULTS.md).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from xlir.config import DEFAULT_BASE_MODEL

Strategy = Literal["mono", "cross", "hybrid"]
Schedule = Literal["constant", "linear", "cosine"]
Selection = Literal["retrieval", "loss", "last"]
MergeWeight = Literal["auto", "none"] | Annotated[float, Field(ge=0.0, le=1.0)]
MERGE_WEIGHT_PATTERN = r"^(auto|none|0(\.[0-9]+)?|1(\.0+)?)$"
"""A merge weight written as text (the trigger form's box): auto, none, or a number in [0, 1]."""
DEFAULT_MERGE_GRID = (0.5, 0.7, 0.85, 1.0)
# sections of the DAG trigger form (Airflow Param ``section``); fields without one are not pipeline params
_MODEL = {"section": "Model"}
_DATA = {"section": "Data"}
_TRAINING = {"section": "Training"}
_MODEL_SELECTION = {"section": "Model selection"}


class TrainConfig(BaseModel):
    """One training run: base encoder, data, batch strategy, optimiser and bookkeeping."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # 1. model
    base_model: str = Field(DEFAULT_BASE_MODEL, title="Base model", json_schema_extra=_MODEL, min_length=1, description="encoder spec to start from (xlir.models)")
    max_seq_length: int = Field(128, title="Max sequence length", json_schema_extra=_MODEL, ge=8, le=512, description="tokens per text in training")
    freeze_word_embeddings: bool | None = Field(
        None, title="Freeze word embeddings", json_schema_extra=_MODEL,
        description="freeze the word-embedding matrix (96M of the bundled encoder's 118M parameters); "
        "None = on for CPU, off on a GPU",
    )

    # 2. data
    train_datasets: list[str] = Field(
        default_factory=lambda: ["mlqa-r"], title="Training datasets", json_schema_extra=_DATA,
        min_length=1,
        description="named datasets (mlqa-r, dream:train; the test sets xquad-r and dream:test are refused) or paths to JSONL/Parquet files in the "
        "canonical question columns; each batch comes from one of them, chosen in proportion to its size",
    )
    languages: list[str] | None = Field(
        None, title="Languages", json_schema_extra=_DATA, description="keep only these languages of the training data (None = all)"
    )
    holdout_languages: list[str] | None = Field(
        None, title="Held-out languages", json_schema_extra=_DATA,
        description="languages left out of training but kept in the retrieval validation: their Mo. mAP "
        "(val.map.mo.unseen) shows what fine-tuning does to languages it never saw, and the selection criterion "
        "penalises its loss against the base like the seen Mo.'s (a probe: benchmarks/experiment_unseen.py)",
    )
    validation_fraction: float = Field(
        0.1, title="Validation fraction", json_schema_extra=_DATA, ge=0.0, le=0.5, description="share of parallel ids held out for model selection (the retrieval validation; 0 = none)"
    )

    # 3. batches
    strategy: Strategy = Field("hybrid", title="Batch strategy", json_schema_extra=_TRAINING, description="batch strategy: mono, cross, or hybrid")
    alpha: float = Field(0.5, title="Alpha", json_schema_extra=_TRAINING, ge=0.0, le=1.0, description="hybrid: probability that a batch is monolingual")
    batch_size: int = Field(32, title="Batch size", json_schema_extra=_TRAINING, ge=2, le=4096, description="triplets per batch (in-batch negatives)")
    mini_batch_size: int | None = Field(
        None, title="GradCache mini-batch", json_schema_extra=_TRAINING, ge=1, le=4096, description="GradCache mini-batch (CachedMultipleNegativesRankingLoss); None = plain MNRL"
    )

    # 4. optimiser and loss
    length_groups: int = Field(
        8, title="Length groups", json_schema_extra=_TRAINING, ge=1, le=64,
        description="embed a step's texts in about this many length-sorted forwards, each padded to its own "
        "longest text (xlir.training.losses: 1.58x per CPU step at 8); 1 = sentence-transformers' forwards",
    )
    steps: int = Field(100, title="Steps", json_schema_extra=_TRAINING, ge=1, le=10_000_000, description="optimizer steps (batches)")
    lr: float = Field(
        3e-5, title="Learning rate", json_schema_extra=_TRAINING, gt=0.0, le=1.0,
        description="AdamW peak learning rate (the paper's 3e-5; it beat 1e-4 at every validation of 50 to 150 steps, "
        "while 1e-4 wins 20-step runs, the pipeline's default: docs/RESULTS.md, Recipe)",
    )
    weight_decay: float = Field(0.01, title="Weight decay", json_schema_extra=_TRAINING, ge=0.0, le=1.0, description="AdamW weight decay")
    lr_schedule: Schedule = Field(
        "constant", title="Learning-rate schedule", json_schema_extra=_TRAINING, description="learning rate after warm-up: constant, linear decay to 0, or cosine decay to 0"
    )
    warmup_ratio: float = Field(0.0, title="Warm-up ratio", json_schema_extra=_TRAINING, ge=0.0, lt=1.0, description="share of steps with linear warm-up")
    scale: float = Field(50.0, title="Loss scale", json_schema_extra=_TRAINING, gt=0.0, le=1000.0, description="similarity scale of the loss (1 / temperature)")
    align_weight: float = Field(
        1.0, title="Alignment weight", json_schema_extra=_TRAINING, ge=0.0, le=100.0,
        description="weight of the cross-lingual alignment term: questions and answer sentences pulled towards "
        "the base encoder's embedding of their English version (English rows towards their own), 2 - 2 cos "
        "(xlir.training.losses; chosen on the MLQA-R validation: docs/RESULTS.md, Recipe); 0 = contrastive loss "
        "only, the default with mini_batch_size (GradCache)",
    )
    seed: int = Field(0, title="Seed", json_schema_extra=_TRAINING, ge=0, le=2**32 - 1, description="seed of data split, negatives, batches and weights")

    # 5. bookkeeping
    output_dir: Path | None = Field(
        None, title="Output folder", description="run folder (default: under the xlir cache, named by the config's hash)"
    )
    checkpoint_every: int = Field(50, title="Checkpoint every", json_schema_extra=_TRAINING, ge=1, description="save a resumable checkpoint every K steps")
    keep_checkpoints: int = Field(2, title="Checkpoints kept", ge=1, le=100, description="checkpoints kept on disk")
    eval_every: int | None = Field(
        None, title="Validate every", json_schema_extra=_MODEL_SELECTION, ge=1, description="validate every K steps (None = at each checkpoint)"
    )
    select: Selection = Field(
        "retrieval", title="Checkpoint selection", json_schema_extra=_MODEL_SELECTION,
        description="which checkpoint the run returns: retrieval = best validation criterion (Mul. mAP, Mo. "
        "loss against the base penalised; xlir.training.selection) on the held-out ids, loss = lowest "
        "validation loss, last = the last step (the default when validation_fraction is 0)",
    )
    select_mo_tolerance: float = Field(
        0.0, title="Mo. tolerance of the selection", json_schema_extra=_MODEL_SELECTION, ge=0.0, le=1.0, description="validation Mo. mAP below the base encoder's by more than this is penalised"
    )
    merge_with_base: MergeWeight = Field(
        "auto", title="Merge with base (WiSE-FT)",
        json_schema_extra={**_MODEL_SELECTION, "pattern": MERGE_WEIGHT_PATTERN},
        description="WiSE-FT: return (1 - lambda) * base + lambda * fine-tuned; auto = the lambda of merge_grid "
        "with the best validation criterion (needs select=retrieval), none = the fine-tuned weights",
    )
    merge_grid: list[Annotated[float, Field(ge=0.0, le=1.0)]] = Field(
        default_factory=lambda: list(DEFAULT_MERGE_GRID), title="Merge grid", json_schema_extra=_MODEL_SELECTION, min_length=1,
        description="lambdas tried by merge_with_base=auto (1.0 = not merged)",
    )
    merge_early_stop: bool = Field(
        True, title="Merge early stop", json_schema_extra=_MODEL_SELECTION,
        description="merge_with_base=auto: walk merge_grid from 1 down and stop at the first lambda scoring more "
        "than merge_tolerance below the best so far (the same choice when the criterion is unimodal in lambda, "
        "as in every ablation run); false scores the whole grid",
    )
    merge_tolerance: float = Field(
        0.002, title="Merge tolerance", json_schema_extra=_MODEL_SELECTION, ge=0.0, le=1.0,
        description="merge_with_base=auto: the smallest lambda whose validation criterion is within this of the "
        "best (ties go to the weights closer to the base); the default is one standard error of the paired "
        "Mul. mAP difference between merges on the MLQA-R validation (benchmarks/results/merge_tolerance.json); "
        "0 = the best",
    )
    validation_precision: Literal["fp32", "bf16", "int8", "auto"] = Field(
        "fp32", title="Validation precision", json_schema_extra=_MODEL_SELECTION,
        description="precision of the retrieval validation's encoding (checkpoints and the base scored alike; "
        "training itself is fp32 unless train_precision is bf16): bf16 (~2.7x, CPUs with AMX or AVX-512 BF16; orders models as fp32 does), "
        "int8 (~1.3x, sweeps only), auto (bf16 where the CPU has bf16 units, else fp32)",
    )
    train_precision: Literal["fp32", "bf16"] = Field(
        "fp32", title="Training precision", json_schema_extra=_TRAINING,
        description="CPU training: fp32, or bf16 (the forward under bf16 autocast on a CPU with bf16 units, AMX or "
        "AVX-512 BF16; weights, optimizer and loss stay fp32; the training model's validation is then bf16 too). "
        "On a GPU, mixed precision is always on",
    )
    early_stopping_patience: int | None = Field(
        None, title="Early stopping patience", json_schema_extra=_MODEL_SELECTION,
        ge=1,
        description="stop after this many validations without improvement of the selection metric "
        "(None = no early stopping)",
    )
    resume: bool = Field(True, title="Resume", description="continue from the last checkpoint in output_dir when there is one")
    log_every: int = Field(1, title="Log every", ge=1, description="log the training loss every K steps")

    @field_validator("train_datasets", "languages", "holdout_languages", mode="before")
    @classmethod
    def _split_commas(cls, v):
        if isinstance(v, str):
            v = [v]
        if isinstance(v, (list, tuple)):
            out = [part.strip() for item in v for part in str(item).split(",") if part.strip()]
            return out
        return v

    @field_validator("train_datasets")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        dup = sorted({x for x in v if v.count(x) > 1})
        if dup:
            raise ValueError(f"listed twice: {dup}")
        return v

    @model_validator(mode="after")
    def _consistent(self):
        if self.mini_batch_size is not None and self.mini_batch_size > self.batch_size:
            raise ValueError(f"mini_batch_size ({self.mini_batch_size}) exceeds batch_size ({self.batch_size})")
        if self.holdout_languages and (self.validation_fraction == 0 or self.select != "retrieval"):
            raise ValueError("holdout_languages are measured by the retrieval validation: set validation_fraction > 0 "
                             "and select=retrieval")
        if self.holdout_languages and self.languages and not set(self.languages) - set(self.holdout_languages):
            raise ValueError(f"holdout_languages {self.holdout_languages} leave no language of {self.languages} to train on")
        if self.mini_batch_size is not None and "align_weight" not in self.model_fields_set:
            self.__dict__["align_weight"] = 0.0  # GradCache's loss has no alignment term
        if self.align_weight > 0 and self.mini_batch_size is not None:
            raise ValueError("align_weight needs the plain loss: unset mini_batch_size (GradCache) or set align_weight 0")
        if self.train_precision == "bf16" and "validation_precision" not in self.model_fields_set:
            self.__dict__["validation_precision"] = "bf16"  # the model trains under autocast: it validates so too
        if self.train_precision == "bf16" and self.validation_precision in ("fp32", "int8"):
            raise ValueError(f"train_precision bf16 runs the training model's forward under bf16 autocast, so its "
                             f"validation cannot be {self.validation_precision}: set validation_precision bf16 or auto")
        if self.early_stopping_patience is not None and self.validation_fraction == 0:
            raise ValueError("early stopping needs a validation split: set validation_fraction > 0")
        if self.validation_fraction == 0 and "select" not in self.model_fields_set:
            self.__dict__["select"] = "last"  # nothing held out: the default selection is the last step
        if self.select != "retrieval" and "merge_with_base" not in self.model_fields_set:
            self.__dict__["merge_with_base"] = "none"  # the default merge is chosen on the retrieval validation
        if self.merge_with_base == "auto" and self.select != "retrieval":
            raise ValueError("merge_with_base=auto chooses lambda on the retrieval validation: set select=retrieval")
        if self.select != "last" and self.validation_fraction == 0:
            raise ValueError(f"select={self.select} needs held-out data: set validation_fraction > 0, or select=last")
        if self.early_stopping_patience is not None and self.select == "last":
            raise ValueError("early stopping needs a selection metric: set select to retrieval or loss")
        if self.select != "last" and self.checkpoint_every % self.validation_every != 0:
            raise ValueError(
                f"with select={self.select}, checkpoint_every ({self.checkpoint_every}) must be a multiple of "
                f"eval_every ({self.validation_every}) so the best validation step has a checkpoint"
            )
        return self

    @field_validator("merge_with_base", mode="before")
    @classmethod
    def _merge_weight(cls, v):
        if isinstance(v, str) and v.strip().lower() not in ("auto", "none"):
            try:
                return float(v)
            except ValueError:
                raise ValueError(f"merge_with_base must be auto, none or a number in [0, 1], got {v!r}") from None
        return v.strip().lower() if isinstance(v, str) else v

    @property
    def validation_every(self) -> int:
        return self.eval_every or self.checkpoint_every

    def hyperparameters(self) -> dict:
        """Everything that shapes the trained weights (bookkeeping fields left out), JSON-ready."""
        skip = {"output_dir", "resume", "keep_checkpoints", "log_every"}
        return {k: v for k, v in self.model_dump(mode="json").items() if k not in skip}

    def run_id(self) -> str:
        """A short stable hash of the hyper-parameters: the default run folder's name."""
        blob = json.dumps(self.hyperparameters(), sort_keys=True).encode()
        return "train-" + hashlib.sha256(blob).hexdigest()[:12]
