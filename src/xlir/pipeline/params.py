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

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator
from pydantic.fields import FieldInfo

from xlir.errors import XlirError
from xlir.evaluation.config import EvalConfig
from xlir.registry.gates import gate_profiles
from xlir.registry.versions import MODEL_NAME
from xlir.training.config import Strategy, TrainConfig

TRAIN_PARAMS = (
    "base_model", "max_seq_length", "freeze_word_embeddings",
    "train_datasets", "languages", "holdout_languages", "validation_fraction",
    "strategy", "alpha", "batch_size", "mini_batch_size", "length_groups", "steps", "lr", "weight_decay",
    "lr_schedule", "warmup_ratio", "scale", "align_weight", "train_precision", "seed", "checkpoint_every",
    "merge_with_base", "merge_grid", "merge_tolerance", "early_stopping_patience",
)
"""``TrainConfig`` fields a pipeline run exposes, with TrainConfig's type, bounds, title and description."""
TRAIN_NOT_PARAMS = {
    "output_dir": "the run folder is the DAG run's",
    "resume": "a retried task always resumes from its checkpoint",
    "keep_checkpoints": "bookkeeping",
    "log_every": "bookkeeping",
    "eval_every": "validation runs at each checkpoint",
    "select": "retrieval when ids are held out, else last",
    "select_mo_tolerance": "the gates own the Mo. tolerance",
    "merge_early_stop": "a speed setting with the same choice (tested)",
    "validation_precision": "auto in a training run (PIPELINE_VALIDATION_PRECISION); a comparison's follows its "
                            "precision param",
}
"""``TrainConfig`` fields a pipeline run sets itself, and why (a test checks every field is in one of the two)."""
PIPELINE_VALIDATION_PRECISION = "auto"
"""A training run's retrieval validation: bf16 where the CPU has bf16 units, else fp32. On the MLQA-R
validation ids bf16 orders models as fp32 does and moves the criterion by under 0.001, at 2.7x the
speed (docs/RESULTS.md, the bf16 fast path); the gating evaluations stay fp32."""
PIPELINE_TRAIN_DEFAULTS = {"steps": 20, "checkpoint_every": 10, "lr": 1e-4}
"""Where a pipeline run's default differs from ``xlir train``'s: the laptop budget of the default
`make run` (20 CPU steps, about 5 minutes), checkpointed so a retried task loses little, and the
learning rate for that budget (1e-4 beat 3e-5 at 20 steps on three validation seeds, and lost to it
at every validation of longer runs: docs/RESULTS.md, second recipe round)."""
EVAL_PARAMS = {"max_questions_per_lang": "eval_questions_per_lang", "seed": "eval_seed",
               "max_seq_length": "eval_max_seq_length", "candidate_text": "eval_candidate_text"}
"""``EvalConfig`` fields a pipeline run exposes, by param name (prefixed: they describe the evaluation)."""
PIPELINE_EVAL_DEFAULTS = {"max_questions_per_lang": 200}
"""200 questions per language against the full pool: the pool (13,014 XQuAD-R sentences) is the cost and
is encoded whole anyway, and at 50 questions the standard error of a Mo. mAP difference (about 0.009)
was as large as the gate's Mo. tolerance (0.01); at 200 it is about 0.004 (docs/RESULTS.md, Recipe)."""


def _derived(source: type[BaseModel], name: str, defaults: dict[str, Any], section: str | None = None):
    """``(annotation, FieldInfo)`` of ``source``'s field ``name``, with the pipeline's default where it
    differs, for ``create_model``."""
    info = source.model_fields[name]
    overrides: dict[str, Any] = {}
    if name in defaults:
        overrides.update(default=defaults[name], default_factory=None)
    if section:
        overrides["json_schema_extra"] = {**(info.json_schema_extra or {}), "section": section}
    return info.annotation, FieldInfo.merge_field_infos(info, **overrides) if overrides else info


DATA_VERSION_PATTERN = r"^[0-9a-f]{16,64}$"
"""An ingest store version: the first 16 (or more) hex digits of the content's sha256; never a path."""


class _PipelineOnly(BaseModel):
    """The knobs that exist only in a pipeline run: ingested data, where to evaluate, gates, registry."""

    model_config = ConfigDict(extra="forbid")

    data_version: str | None = Field(None, title="Ingested data version", json_schema_extra={"section": "Data"},
                                     pattern=DATA_VERSION_PATTERN,
                                     description="a version from the ingest store to train on as well (set by the asset "
                                                 "event): 16 to 64 lowercase hex digits, the store's version names")
    eval_datasets: list[str] = Field(default_factory=lambda: ["xquad-r", "dream"], min_length=1,
                                     title="Evaluation datasets", json_schema_extra={"section": "Evaluation"},
                                     description="zero-shot evaluation datasets (one mapped task each); the gate uses xquad-r")
    gate_profile: str = Field("default", title="Gate profile", json_schema_extra={"section": "Gates and registry"},
                              description="promotion gates profile (registry/gates.yaml)")
    gate_overrides: dict[str, Any] = Field(default_factory=dict, title="Gate overrides",
                                           json_schema_extra={"section": "Gates and registry"},
                                           description='per-run threshold overrides, e.g. {"retrieval.min_gain_mul": 0.01}')
    promote: bool = Field(True, title="Promote", json_schema_extra={"section": "Gates and registry"},
                          description="move the champion alias when the gates pass")
    registered_model: str = Field(MODEL_NAME, min_length=1, title="Registered model",
                                  json_schema_extra={"section": "Gates and registry"},
                                  description="MLflow registered model name")
    experiment: str = Field("xlir", min_length=1, title="MLflow experiment",
                            json_schema_extra={"section": "Gates and registry"},
                            description="experiment of the pipeline runs")

    @field_validator("gate_profile")
    @classmethod
    def _known_profile(cls, v: str) -> str:
        known = gate_profiles()
        if v not in known:
            raise ValueError(f"unknown gate profile {v!r}; known: {sorted(known)}")
        return v

    @field_validator("train_datasets", "languages", "holdout_languages", mode="before", check_fields=False)
    @classmethod
    def _split_commas(cls, v):
        return TrainConfig._split_commas(v)

    @field_validator("merge_with_base", mode="before", check_fields=False)
    @classmethod
    def _merge_weight(cls, v):
        return TrainConfig._merge_weight(v)

    @model_validator(mode="after")
    def _trainable(self):
        """TrainConfig's rules across fields (e.g. early stopping needs held-out ids), at trigger time."""
        if "steps" in type(self).model_fields:
            try:
                self.train_config()
            except ValidationError as e:
                raise ValueError("; ".join(err["msg"].removeprefix("Value error, ") for err in e.errors())) from None
        return self

    def train_config(self, **fields) -> TrainConfig:
        """The ``TrainConfig`` of this run's params (``fields`` set the rest: data, folder, variant)."""
        defaults = {name: TrainConfig.model_fields[name].get_default(call_default_factory=True) for name in TRAIN_PARAMS}
        # a value left at TrainConfig's default is not passed, so TrainConfig's own rules for unset fields apply
        # (nothing held out -> no merge; GradCache -> no alignment term)
        given = {name: getattr(self, name) for name in TRAIN_PARAMS if getattr(self, name) != defaults[name]}
        return TrainConfig(**{**given, **fields})

    def eval_config(self, **fields) -> EvalConfig:
        """The ``EvalConfig`` of this run's params (``fields``: model, dataset, precision, folder)."""
        return EvalConfig(**{src: getattr(self, name) for src, name in EVAL_PARAMS.items()}, **fields)


PipelineParams = create_model(
    "PipelineParams",
    __base__=_PipelineOnly,
    __module__=__name__,
    __doc__="One training pipeline run: data, model, batch strategy, evaluation, gates, promotion. Training "
            "and evaluation fields come from ``TrainConfig`` and ``EvalConfig`` (their single definition).",
    **{name: _derived(TrainConfig, name, PIPELINE_TRAIN_DEFAULTS) for name in TRAIN_PARAMS},
    **{param: _derived(EvalConfig, src, PIPELINE_EVAL_DEFAULTS) for src, param in EVAL_PARAMS.items()},
)


class CompareParams(PipelineParams):
    """A strategy comparison: mono, cross, hybrid and hybrid at each alpha, on one data version and seed."""

    strategies: list[Strategy] = Field(default_factory=lambda: ["mono", "cross", "hybrid"], min_length=1,
                                       title="Strategies", description="strategies to train (hybrid uses alpha)")
    alphas: list[Annotated[float, Field(ge=0.0, le=1.0)]] = Field(default_factory=list, title="Extra alphas",
                                description="further hybrid runs, one per alpha in [0, 1]")
    promote: bool = Field(False, title="Promote", description="never used: a comparison promotes nothing")
    precision: Literal["fp32", "bf16", "int8"] = Field(
        "fp32", title="Precision",
        description="bf16 (~2.7x, CPUs with AMX or AVX-512 BF16) or int8 (~1.3x): fast paths for the comparison's "
                    "evaluations and retrieval validation; labelled in the table, never used by the gates")

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
    """A JSON-schema property of the pydantic model as Param keyword arguments (a JSON schema: Airflow
    validates a trigger's value with it, and the form draws its widget from ``type``)."""
    if "anyOf" in prop:  # Optional[X], or a union such as the merge weight (auto | none | a number)
        alts = [a for a in prop["anyOf"]]
        out = {"type": [_TYPES[a["type"]] for a in alts]}
        for alt in alts:
            out.update({k: v for k, v in alt.items() if k in _KEYS and k != "enum"})
        enums = [a.get("enum") for a in alts if a["type"] != "null"]
        if enums and all(enums):  # a choice only when every alternative is one
            out["enum"] = [v for e in enums for v in e] + ([None] if "null" in out["type"] else [])
    else:
        out = {"type": _TYPES[prop["type"]], **{k: v for k, v in prop.items() if k in _KEYS}}
    if "const" in prop:
        out["enum"] = [prop["const"]]
    if "pattern" in prop:  # a union's text form (json_schema_extra), checked on strings only
        out["pattern"] = prop["pattern"]
    if "section" in prop:
        out["section"] = prop["section"]
    return out


DEFAULTS_ENV = "XLIR_PIPELINE_DEFAULTS"
POLICY_KEYS = {
    "min_eval_questions_per_lang": "the floor of a promoting run's gating evaluation size (questions per language; "
                                   "null = every question); default: the deployment's eval_questions_per_lang",
}
"""Keys of ``$XLIR_PIPELINE_DEFAULTS`` that are deployment settings, not params (no trigger can set them)."""


def _deployment_settings() -> dict:
    """``$XLIR_PIPELINE_DEFAULTS`` as a mapping (inline JSON, or a JSON/YAML file); {} when unset."""
    raw = os.environ.get(DEFAULTS_ENV, "").strip()
    if not raw:
        return {}
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
    unknown = sorted(set(data) - set(CompareParams.model_fields) - set(POLICY_KEYS))
    if unknown:
        raise XlirError(f"{DEFAULTS_ENV}: unknown param(s) {unknown}; known: {sorted(CompareParams.model_fields)} "
                        f"and the deployment settings {sorted(POLICY_KEYS)}")
    return data


def configured_defaults(model: type[PipelineParams] = PipelineParams) -> PipelineParams:
    """The params' defaults, with the deployment's overrides from ``$XLIR_PIPELINE_DEFAULTS`` (inline
    JSON, or a JSON/YAML file): what asset-triggered runs use and what the trigger form starts from."""
    data = _deployment_settings()
    try:
        return model(**{k: v for k, v in data.items() if k in model.model_fields})
    except ValidationError as e:
        raise XlirError(f"{DEFAULTS_ENV}: invalid pipeline defaults: {e}") from None


# ------------------------------------------------------------------ what a trigger may not decide


class PolicyError(XlirError):
    """A DAG run asked for something only the deployment may decide (a looser gate, a smaller or other
    gating evaluation, data from outside the configured roots); refused before any training."""


GATING_EVAL_FIXED = ("eval_seed", "eval_candidate_text", "eval_max_seq_length")
"""Gating-evaluation params a promoting run takes from the deployment as they are (no seed shopping)."""


class DeploymentPolicy(BaseModel):
    """What the deployment, never a trigger's conf, decides about promoting runs: read from
    ``$XLIR_PIPELINE_DEFAULTS`` (its ``gate_profile``, ``gate_overrides``, gating evaluation params, and
    ``min_eval_questions_per_lang``) and ``$XLIR_DATA_ROOTS``."""

    model_config = ConfigDict(frozen=True)

    gate_profile: str
    gate_overrides: dict[str, Any]
    min_eval_questions_per_lang: int | None
    eval_seed: int
    eval_candidate_text: str
    eval_max_seq_length: int
    data_roots: tuple[str, ...]
    default_train_paths: tuple[str, ...]

    def gates(self):
        from xlir.registry.gates import load_gates

        return load_gates(self.gate_profile, self.gate_overrides)


DATA_ROOTS_ENV = "XLIR_DATA_ROOTS"


def data_roots() -> tuple[str, ...]:
    """``$XLIR_DATA_ROOTS`` (colon-separated absolute folders) as resolved paths; () when unset."""
    out = []
    for raw in os.environ.get(DATA_ROOTS_ENV, "").split(":"):
        if not raw.strip():
            continue
        root = Path(raw.strip()).expanduser()
        if not root.is_absolute():
            raise XlirError(f"{DATA_ROOTS_ENV}: {raw!r} is not an absolute path")
        out.append(str(root.resolve()))
    return tuple(out)


def deployment_policy() -> DeploymentPolicy:
    """The deployment's policy, from its environment (see ``DeploymentPolicy``)."""
    settings = _deployment_settings()
    d = configured_defaults(PipelineParams)
    floor = settings.get("min_eval_questions_per_lang", d.eval_questions_per_lang)
    if floor is not None and (isinstance(floor, bool) or not isinstance(floor, int) or floor < 1):
        raise XlirError(f"{DEFAULTS_ENV}: min_eval_questions_per_lang must be a positive integer or null, got {floor!r}")
    if floor is None and d.eval_questions_per_lang is not None or (
            floor is not None and d.eval_questions_per_lang is not None and d.eval_questions_per_lang < floor):
        raise XlirError(f"{DEFAULTS_ENV}: the default eval_questions_per_lang ({d.eval_questions_per_lang}) is below "
                        f"the deployment's own floor min_eval_questions_per_lang ({floor})")
    paths = tuple(str(Path(t).expanduser().resolve()) for t in d.train_datasets if is_path_spec(t))
    return DeploymentPolicy(gate_profile=d.gate_profile, gate_overrides=d.gate_overrides,
                            min_eval_questions_per_lang=floor, eval_seed=d.eval_seed,
                            eval_candidate_text=d.eval_candidate_text, eval_max_seq_length=d.eval_max_seq_length,
                            data_roots=data_roots(), default_train_paths=paths)


def is_path_spec(spec: str) -> bool:
    """Whether ``TrainConfig`` reads ``spec`` as a file (not a named dataset): a slash or a file suffix."""
    return "/" in spec or "\\" in spec or bool(Path(spec).suffix) or spec.startswith(("~", "."))


def is_promoting(params: PipelineParams) -> bool:
    """A run whose gate decision may move ``champion`` (a comparison never promotes)."""
    return bool(params.promote) and not isinstance(params, CompareParams)


def promotion_violations(params: PipelineParams, policy: DeploymentPolicy | None = None) -> list[str]:
    """Why a promoting run may not run as asked (empty: it may). Its gates must be at least as strict
    as the deployment's profile and overrides, setting by setting (a run may choose a stricter profile
    and tighten thresholds, never loosen one, and its overrides never loosen its own profile); its
    gating evaluation at least the deployment's size, on the deployment's seed, text and length."""
    if not is_promoting(params):
        return []
    from xlir.registry.gates import GateConfigError, load_gates, loosened

    policy = policy or deployment_policy()
    out: list[str] = []
    try:
        run_gates = load_gates(params.gate_profile, params.gate_overrides)
    except GateConfigError as e:
        return [f"gate_overrides: {e}"]
    floor = policy.gates()
    out += [f"gate {x}" for x in loosened(run_gates, floor)]
    if params.gate_profile != policy.gate_profile:
        own = load_gates(params.gate_profile)
        out += [f"gate_overrides loosen profile {params.gate_profile!r}: {x}" for x in loosened(run_gates, own)]
    n, least = params.eval_questions_per_lang, policy.min_eval_questions_per_lang
    if (least is None and n is not None) or (least is not None and n is not None and n < least):
        out.append(f"eval_questions_per_lang {n} is below the deployment's floor "
                   f"{'of every question (null)' if least is None else least}")
    for name in GATING_EVAL_FIXED:
        if getattr(params, name) != getattr(policy, name):
            out.append(f"{name} {getattr(params, name)!r} is not the deployment's {getattr(policy, name)!r}")
    if floor.dataset not in params.eval_datasets:
        out.append(f"eval_datasets {params.eval_datasets} lack the gating dataset {floor.dataset!r}")
    return out


def check_promotion_policy(params: PipelineParams, policy: DeploymentPolicy | None = None) -> None:
    """Raise ``PolicyError`` when a promoting run asks for what only the deployment may decide."""
    policy = policy or deployment_policy()
    bad = promotion_violations(params, policy)
    if bad:
        fixed = ", ".join(f"{k} {getattr(policy, k)!r}" for k in GATING_EVAL_FIXED)
        raise PolicyError(
            "refused before training: this run would promote (promote: true), and only the deployment decides "
            "how a promotion is gated:\n  - " + "\n  - ".join(bad) + "\n"
            f"The deployment ({DEFAULTS_ENV}) gates on profile {policy.gate_profile!r}"
            f"{f' with overrides {policy.gate_overrides}' if policy.gate_overrides else ''}, at least "
            f"{policy.min_eval_questions_per_lang or 'every'} question(s) per language, {fixed}. A run may choose a "
            "stricter profile, tighten a threshold or evaluate on more questions; or set promote: false to train, "
            "evaluate and gate without moving the champion."
        )


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
