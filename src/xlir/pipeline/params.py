"""``PipelineParams``: the one definition of a pipeline run's knobs (DAG Params, CLI, tests).

``airflow_params()`` turns the model's JSON schema into the ``Param(...)`` dict of the DAGs
(title, description, type, enum, minimum/maximum), so the trigger form, its validation at
trigger time and the code that runs the tasks never disagree. Imports stay light (pydantic,
yaml): the dag-processor imports this module every time it parses a DAG file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from xlir.config import DEFAULT_BASE_MODEL
from xlir.errors import XlirError
from xlir.registry.gates import gate_profiles
from xlir.registry.versions import MODEL_NAME

Strategy = Literal["mono", "cross", "hybrid"]


class PipelineParams(BaseModel):
    """One training pipeline run: data, model, batch strategy, evaluation, gates, promotion."""

    model_config = ConfigDict(extra="forbid")

    base_model: str = Field(DEFAULT_BASE_MODEL, min_length=1, title="Base model",
                            description="encoder spec to fine-tune: bundled:multilingual-e5-small, or tiny (tests)")
    train_datasets: list[str] = Field(default_factory=lambda: ["mlqa-r"], min_length=1, title="Training datasets",
                                      description="named datasets (mlqa-r, dream:train) or JSONL/Parquet paths; "
                                                  "an ingested data version from the triggering asset event is added")
    data_version: str | None = Field(None, title="Ingested data version",
                                     description="a version from the ingest store to train on as well (set by the asset event)")
    strategy: Strategy = Field("hybrid", title="Batch strategy",
                               description="mono: one language per batch; cross: mixed; hybrid: mono with probability alpha")
    alpha: float = Field(0.5, ge=0.0, le=1.0, title="Alpha", description="hybrid: share of monolingual batches")
    steps: int = Field(20, ge=1, le=100_000, title="Steps", description="optimizer steps")
    batch_size: int = Field(32, ge=2, le=4096, title="Batch size", description="triplets per batch (in-batch negatives)")
    lr: float = Field(3e-5, gt=0.0, le=1.0, title="Learning rate", description="AdamW peak learning rate")
    lr_schedule: Literal["constant", "linear", "cosine"] = Field(
        "constant", title="Learning-rate schedule", description="after warm-up: constant, linear decay or cosine decay")
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0, title="Warm-up ratio", description="share of steps with linear warm-up")
    scale: float = Field(50.0, gt=0.0, le=1000.0, title="Loss scale",
                         description="similarity scale of the contrastive loss (1 / temperature; e5 was pre-trained at 100)")
    merge_with_base: str = Field(
        "auto", pattern=r"^(auto|none|0(\.[0-9]+)?|1(\.0+)?)$", title="Merge with base (WiSE-FT)",
        description="return (1 - lambda) * base + lambda * fine-tuned: auto = lambda chosen on the held-out "
                    "validation ids, none = not merged, or a lambda in [0, 1]")
    max_seq_length: int = Field(128, ge=8, le=512, title="Max sequence length",
                                description="tokens per text, in training and evaluation")
    seed: int = Field(0, ge=0, le=2**31 - 1, title="Seed", description="seed of data split, batches, weights and eval subset")
    validation_fraction: float = Field(0.1, ge=0.0, le=0.5, title="Validation fraction",
                                       description="share of parallel ids held out: the retrieval validation that picks the "
                                                   "checkpoint and the merge (0: none, the last step is returned)")
    early_stopping_patience: int | None = Field(
        None, ge=1, le=10_000, title="Early stopping patience",
        description="stop after this many checkpoints without a better validation criterion (empty: train all steps)")
    checkpoint_every: int = Field(10, ge=1, le=100_000, title="Checkpoint every",
                                  description="save a resumable checkpoint every K steps (a retried task resumes there)")
    eval_datasets: list[str] = Field(default_factory=lambda: ["xquad-r", "dream"], min_length=1, title="Evaluation datasets",
                                     description="zero-shot evaluation datasets (one mapped task each); the gate uses xquad-r")
    eval_questions_per_lang: int = Field(50, ge=1, le=100_000, title="Evaluation questions per language",
                                         description="seeded subset of questions per language (the pool stays complete)")
    gate_profile: str = Field("default", title="Gate profile", description="promotion gates profile (registry/gates.yaml)")
    gate_overrides: dict[str, Any] = Field(default_factory=dict, title="Gate overrides",
                                           description='per-run threshold overrides, e.g. {"retrieval.min_gain_mul": 0.01}')
    promote: bool = Field(True, title="Promote", description="move the champion alias when the gates pass")
    registered_model: str = Field(MODEL_NAME, min_length=1, title="Registered model", description="MLflow registered model name")
    experiment: str = Field("xlir", min_length=1, title="MLflow experiment", description="experiment of the pipeline runs")

    @field_validator("gate_profile")
    @classmethod
    def _known_profile(cls, v: str) -> str:
        known = gate_profiles()
        if v not in known:
            raise ValueError(f"unknown gate profile {v!r}; known: {sorted(known)}")
        return v


class CompareParams(PipelineParams):
    """A strategy comparison: mono, cross, hybrid and hybrid at each alpha, on one data version and seed."""

    strategies: list[Strategy] = Field(default_factory=lambda: ["mono", "cross", "hybrid"], min_length=1,
                                       title="Strategies", description="strategies to train (hybrid uses alpha)")
    alphas: list[Annotated[float, Field(ge=0.0, le=1.0)]] = Field(default_factory=list, title="Extra alphas",
                                description="further hybrid runs, one per alpha in [0, 1]")
    promote: bool = Field(False, title="Promote", description="never used: a comparison promotes nothing")
    precision: Literal["fp32", "int8"] = Field(
        "fp32", title="Precision",
        description="int8: the fast path (~1.3x on CPU) for the comparison's evaluations and retrieval validation; "
                    "labelled in the table, never used by the gates")

    @field_validator("alphas")
    @classmethod
    def _alphas_in_range(cls, v: list[float]) -> list[float]:
        bad = [a for a in v if not 0.0 <= a <= 1.0]
        if bad:
            raise ValueError(f"alphas must be within [0, 1]: {bad}")
        return v


_TYPES = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean",
          "array": "array", "object": "object", "null": "null"}
_KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "minItems",
         "maxItems", "items", "enum", "pattern")


def _field_schema(prop: dict) -> dict:
    """A JSON-schema property of the pydantic model as Param keyword arguments."""
    if "anyOf" in prop:  # Optional[X]
        types, extra = [], {}
        for alt in prop["anyOf"]:
            types.append(_TYPES[alt["type"]])
            extra.update({k: v for k, v in alt.items() if k in _KEYS})
        out = {"type": types, **extra}
    else:
        out = {"type": _TYPES[prop["type"]], **{k: v for k, v in prop.items() if k in _KEYS}}
    if "const" in prop:
        out["enum"] = [prop["const"]]
    return out


DEFAULTS_ENV = "XLIR_PIPELINE_DEFAULTS"


def configured_defaults(model: type[PipelineParams] = PipelineParams) -> PipelineParams:
    """The params' defaults, with the deployment's overrides from ``$XLIR_PIPELINE_DEFAULTS`` (inline
    JSON, or a JSON/YAML file): what asset-triggered runs use and what the trigger form starts from."""
    raw = os.environ.get(DEFAULTS_ENV, "").strip()
    if not raw:
        return model()
    try:
        if raw.startswith("{"):
            data = json.loads(raw)
        else:
            import yaml

            data = yaml.safe_load(Path(raw).expanduser().read_text()) or {}
    except (OSError, ValueError) as e:
        raise XlirError(f"{DEFAULTS_ENV}: cannot read {raw[:200]!r}: {e}") from None
    if not isinstance(data, dict):
        raise XlirError(f"{DEFAULTS_ENV}: expected a mapping of param names to values, got {type(data).__name__}")
    unknown = sorted(set(data) - set(CompareParams.model_fields))
    if unknown:
        raise XlirError(f"{DEFAULTS_ENV}: unknown param(s) {unknown}; known: {sorted(CompareParams.model_fields)}")
    try:
        return model(**{k: v for k, v in data.items() if k in model.model_fields})
    except ValidationError as e:
        raise XlirError(f"{DEFAULTS_ENV}: invalid pipeline defaults: {e}") from None


def param_schema(model: type[PipelineParams] = PipelineParams) -> dict[str, dict]:
    """``{name: {default, type, title, description, enum, minimum, ...}}`` for every field."""
    schema = model.model_json_schema()
    props = schema["properties"]
    out = {}
    defaults = configured_defaults(model).model_dump(mode="json")
    for name, prop in props.items():
        kw = _field_schema(prop)
        if name == "gate_profile":
            kw["enum"] = sorted(gate_profiles())
        kw.update(title=prop.get("title", name), description=prop.get("description", ""))
        out[name] = {"default": defaults[name], **kw}
    return out


def airflow_params(model: type[PipelineParams] = PipelineParams) -> dict:
    """The DAG's ``params``: one typed, titled, described ``airflow.sdk.Param`` per field."""
    from airflow.sdk import Param

    return {name: Param(spec.pop("default"), **spec) for name, spec in param_schema(model).items()}


def parse_params(params: dict, model: type[PipelineParams] = PipelineParams) -> PipelineParams:
    """A task's ``params`` (the DAG run's, already checked by Airflow) as the typed model."""
    fields = model.model_fields
    return model(**{k: v for k, v in dict(params).items() if k in fields})


def training_queue() -> dict[str, str]:
    """``{"queue": $XLIR_TRAIN_QUEUE}`` for the tasks that train and encode (compose routes them to the
    workers that serve that queue, GPU ones where there are); ``{}`` keeps Airflow's default queue."""
    queue = os.environ.get("XLIR_TRAIN_QUEUE", "").strip()
    return {"queue": queue} if queue else {}


VALIDATED_QA_URI = "xlir://validated-qa"
"""The asset the ingest DAG updates (extra: ``version``, ``versions``) and the training DAG is scheduled on."""
VALIDATED_QA_NAME = "xlir_validated_qa"
PROMOTION_POOL = "xlir_promotion"
"""One-slot pool: promotions never overlap."""
