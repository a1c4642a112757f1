"""Promotion gates as data: a versioned YAML of named profiles, and a pure decision function.

``load_gates(profile, overrides)`` reads ``gates.yaml`` (packaged beside this module, or the file
named by ``path`` / ``XLIR_GATES_FILE``), resolves ``extends``, applies per-run overrides and
validates the result. ``evaluate_gates(candidate, champion, gates)`` compares two metric dicts
(the evaluation engine's stable names) and returns a ``GateDecision``: every check's name,
candidate value, reference value, threshold and outcome. No MLflow here; this module is
unit-tested on plain dicts.
"""

from __future__ import annotations

import copy
import json
import math
import os
import statistics
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from xlir.errors import XlirError

DECISION_FILE = "gate/decision.json"
"""Where a candidate's MLflow run keeps its gate decision (written by promotion, read by the report)."""

GATES_FILE = Path(__file__).with_name("gates.yaml")
NOT_LANGUAGES = {"seen", "unseen"}
_EPS = 1e-12  # a value exactly at its threshold passes


class GateConfigError(XlirError):
    """The gate file, its profile or an override is wrong."""


class GateError(XlirError):
    """The gates cannot be evaluated on these metrics (a metric is missing or not a number)."""


class RetrievalGates(BaseModel):
    """mAP checks; ``None`` switches a check off."""

    model_config = ConfigDict(extra="forbid")

    min_gain_mul: float | None = Field(0.005, description="candidate Mul. mAP >= champion + this")
    tolerance_mo: float | None = Field(0.01, ge=0, description="candidate Mo. mAP >= champion - this")
    tolerance_cr: float | None = Field(0.01, ge=0, description="candidate Cr. mAP >= champion - this")
    max_language_drop: float | None = Field(0.03, ge=0, description="each language's Mul. mAP >= champion's - this")
    floor_mul: float | None = Field(0.20, ge=0, le=1, description="absolute floor of Mul. mAP")
    floor_mo: float | None = Field(0.50, ge=0, le=1, description="absolute floor of Mo. mAP")
    floor_cr: float | None = Field(0.40, ge=0, le=1, description="absolute floor of Cr. mAP")


class BiasGates(BaseModel):
    """Language-bias checks; ``None`` switches a check off."""

    model_config = ConfigDict(extra="forbid")

    rank_distance_min_reduction: float | None = Field(
        0.0, le=1, description="rank distance <= champion's x (1 - this); negative = allowed growth"
    )
    rank_distance_ceiling: float | None = Field(None, gt=0, description="absolute ceiling of mean rank distance")
    spread_measure: Literal["range", "std"] = Field("range", description="spread of per-language Mul. mAP")
    spread_ceiling: float | None = Field(0.40, ge=0, description="absolute ceiling of the spread")
    max_spread_increase: float | None = Field(0.05, description="spread <= champion's spread + this")


class GateConfig(BaseModel):
    """One resolved profile of the gate file, overrides applied."""

    model_config = ConfigDict(extra="forbid")

    profile: str = "default"
    version: int = Field(1, description="version of the gate file the profile came from")
    source: str = ""
    description: str = ""
    dataset: str = Field("xquad-r", description="the gating evaluation's dataset (metric prefix)")
    on_eval_mismatch: Literal["reevaluate", "refuse"] = "reevaluate"
    retrieval: RetrievalGates = Field(default_factory=RetrievalGates)
    bias: BiasGates = Field(default_factory=BiasGates)
    overrides: dict[str, Any] = Field(default_factory=dict, description="per-run overrides applied")

    @property
    def prefix(self) -> str:
        return metric_prefix(self.dataset)


class GateCheck(BaseModel):
    name: str
    metric: str
    candidate: float | None
    reference: float | None
    threshold: float | None
    op: Literal[">=", "<="]
    passed: bool
    skipped: bool = False
    detail: str = ""


class GateDecision(BaseModel):
    """The record of one gate evaluation; saved as ``gate/decision.json`` and as version tags."""

    status: Literal["passed", "rejected"]
    checks: list[GateCheck]
    profile: str
    gates_version: int
    gates: dict
    candidate: dict = Field(default_factory=dict, description="version, run id, pipeline run id, eval key")
    reference: dict = Field(default_factory=dict, description="what the candidate was compared with, and its key metrics")
    forced: bool = False
    outcome: dict = Field(default_factory=dict, description="what promotion did with this decision")

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if not c.passed]

    def tags(self) -> dict[str, str]:
        return {
            "gate.status": self.status,
            "gate.failed": ",".join(self.failed),
            "gate.profile": self.profile,
            "gate.config_version": str(self.gates_version),
        }

    def to_json(self) -> str:
        return json.dumps(
            {"status": self.status, "failed": self.failed, **self.model_dump(mode="json", exclude={"status"})},
            indent=2, sort_keys=False, allow_nan=False, default=str,
        )

    def summary(self) -> str:
        """One line; failed per-language checks are grouped (``retrieval.language_drop[th,vi]``)."""
        if self.passed:
            return f"gate passed ({len(self.checks)} checks, profile {self.profile} v{self.gates_version})"
        names: list[str] = []
        groups: dict[str, list[str]] = {}
        for name in self.failed:
            head, _, lang = name.rpartition(".")
            if head == "retrieval.language_drop":
                if head not in groups:
                    names.append(head)
                groups.setdefault(head, []).append(lang)
            else:
                names.append(name)
        text = ", ".join(f"{n}[{','.join(groups[n])}]" if n in groups else n for n in names)
        return f"gate rejected: {text} (profile {self.profile} v{self.gates_version})"


def metric_prefix(dataset: str) -> str:
    """Same rule as ``xlir.evaluation.metric_prefix`` (kept here so this module stays import-light)."""
    return dataset.replace("-", "_").replace(":", "_")


# ---------------------------------------------------------------- loading


def _read_file(path: Path) -> dict:
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GateConfigError(f"gate file {path} does not exist; unset XLIR_GATES_FILE to use the packaged gates") from None
    except yaml.YAMLError as e:
        raise GateConfigError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("profiles"), dict) or not doc["profiles"]:
        raise GateConfigError(f"{path}: expected a mapping with 'version' and a non-empty 'profiles' mapping")
    if not isinstance(doc.get("version"), int):
        raise GateConfigError(f"{path}: 'version' must be an integer (bump it whenever a threshold changes)")
    return doc


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def _resolve(profiles: dict, name: str, path: Path, seen: tuple = ()) -> dict:
    if name not in profiles:
        raise GateConfigError(f"unknown gate profile {name!r} in {path}; available: {', '.join(sorted(profiles))}")
    if name in seen:
        raise GateConfigError(f"{path}: profiles extend each other in a cycle: {' -> '.join((*seen, name))}")
    body = profiles[name] or {}
    if not isinstance(body, dict):
        raise GateConfigError(f"{path}: profile {name!r} must be a mapping")
    body = dict(body)
    parent = body.pop("extends", None)
    if parent is None:
        return body
    return _merge(_resolve(profiles, parent, path, (*seen, name)), body)


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_flatten(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def _settable_keys() -> dict[str, type[BaseModel] | None]:
    keys: dict[str, Any] = {}
    for name, f in GateConfig.model_fields.items():
        if name in {"profile", "version", "source", "overrides"}:
            continue
        sub = f.annotation if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel) else None
        if sub is None:
            keys[name] = None
        else:
            keys.update({f"{name}.{s}": None for s in sub.model_fields})
    return keys


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["retrieval.min_gain_mul=0.01", "bias.spread_ceiling=null"]`` -> a dict (values as YAML)."""
    import yaml

    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise GateConfigError(f"bad gate override {item!r}: expected KEY=VALUE, e.g. retrieval.min_gain_mul=0.01")
        out[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return out


def load_gates(profile: str = "default", overrides: dict[str, Any] | None = None, path: str | Path | None = None) -> GateConfig:
    """The named profile of the gate file with ``overrides`` (dotted keys or nested dicts) applied."""
    path = Path(path or os.environ.get("XLIR_GATES_FILE") or GATES_FILE).expanduser()
    doc = _read_file(path)
    body = _resolve(doc["profiles"], profile, path)
    flat = _flatten(overrides or {})
    settable = _settable_keys()
    unknown = sorted(k for k in flat if k not in settable)
    if unknown:
        raise GateConfigError(f"unknown gate setting(s) {unknown}; settable: {', '.join(sorted(settable))}")
    for key, value in flat.items():
        section, _, leaf = key.rpartition(".")
        target = body.setdefault(section, {}) if section else body
        if isinstance(value, str):  # a CLI value that was not parsed yet
            import yaml

            value = yaml.safe_load(value)
        target[leaf] = value
    try:
        return GateConfig(profile=profile, version=doc["version"], source=str(path), overrides=flat, **body)
    except ValidationError as e:
        where = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
        raise GateConfigError(f"gate profile {profile!r} in {path} (with overrides {flat or 'none'}) is invalid: {where}") from None


STRICTER = {
    "retrieval.min_gain_mul": "higher",
    "retrieval.tolerance_mo": "lower",
    "retrieval.tolerance_cr": "lower",
    "retrieval.max_language_drop": "lower",
    "retrieval.floor_mul": "higher",
    "retrieval.floor_mo": "higher",
    "retrieval.floor_cr": "higher",
    "bias.rank_distance_min_reduction": "higher",
    "bias.rank_distance_ceiling": "lower",
    "bias.spread_ceiling": "lower",
    "bias.max_spread_increase": "lower",
}
"""Which way each threshold is stricter; ``None`` (the check switched off) is the loosest of all."""
SAME = ("dataset", "bias.spread_measure")
"""Settings no two gate configs can be ordered on: a stricter config keeps them as they are."""
_MISMATCH_ORDER = {"reevaluate": 0, "refuse": 1}
NOT_GATES = ("description",)
"""Settable, but no check reads them."""


def loosened(gates: GateConfig, floor: GateConfig) -> list[str]:
    """Where ``gates`` would let through a candidate that ``floor`` stops: one line per setting, empty
    when ``gates`` is at least as strict as ``floor`` everywhere (the deployment's profile is the
    floor; a run may choose a stricter profile and tighten any threshold, never loosen one)."""
    mine, theirs = _flatten(gates.model_dump(exclude={"overrides"})), _flatten(floor.model_dump(exclude={"overrides"}))
    out = []
    for key, way in STRICTER.items():
        a, b = mine.get(key), theirs.get(key)
        if b is None:
            continue  # the floor does not check it: anything goes
        if a is None:
            out.append(f"{key} is switched off (needs {b} or stricter)")
        elif (way == "higher" and a < b - _EPS) or (way == "lower" and a > b + _EPS):
            out.append(f"{key} {a} is looser than {b} ({way} is stricter)")
    for key in SAME:
        if mine.get(key) != theirs.get(key):
            out.append(f"{key} {mine.get(key)!r} is not {theirs.get(key)!r}")
    if _MISMATCH_ORDER[gates.on_eval_mismatch] < _MISMATCH_ORDER[floor.on_eval_mismatch]:
        out.append(f"on_eval_mismatch {gates.on_eval_mismatch!r} is looser than {floor.on_eval_mismatch!r}")
    return out


def gate_profiles(path: str | Path | None = None) -> dict[str, str]:
    """Profile name -> description, for help texts."""
    path = Path(path or os.environ.get("XLIR_GATES_FILE") or GATES_FILE).expanduser()
    doc = _read_file(path)
    return {name: str((body or {}).get("description", "")).strip() for name, body in doc["profiles"].items()}


# ---------------------------------------------------------------- evaluation


def languages_of(metrics: dict[str, float], prefix: str) -> list[str]:
    """Query languages with a per-language Mul. mAP (``{prefix}.map.mul.{lang}``)."""
    head = f"{prefix}.map.mul."
    return sorted(
        k[len(head):] for k in metrics if k.startswith(head) and "." not in k[len(head):] and k[len(head):] not in NOT_LANGUAGES
    )


def spread(values: list[float], measure: str) -> float:
    if not values:
        return float("nan")
    return max(values) - min(values) if measure == "range" else statistics.pstdev(values)


class _Reader:
    def __init__(self, metrics: dict[str, float] | None, side: str):
        self.metrics, self.side = metrics, side

    def __call__(self, name: str, check: str) -> float:
        assert self.metrics is not None
        if name not in self.metrics or self.metrics[name] is None:
            raise GateError(
                f"the {self.side}'s metrics lack {name!r}, needed by gate check {check!r}; evaluate it on the gating "
                f"dataset, or switch the check off (set it to null)"
            )
        try:
            value = float(self.metrics[name])
        except (TypeError, ValueError):
            raise GateError(f"the {self.side}'s metric {name!r} is not a number: {self.metrics[name]!r}") from None
        if not math.isfinite(value):
            raise GateError(f"the {self.side}'s metric {name!r} is {value}; its evaluation is broken, not gated")
        return value


def evaluate_gates(
    candidate_metrics: dict[str, float],
    champion_metrics: dict[str, float] | None,
    gates: GateConfig,
) -> GateDecision:
    """Every enabled check of ``gates``; without a champion (``None``) only the absolute ones run.

    Raises ``GateError`` when a metric that an enabled check needs is missing or not finite.
    """
    p, r, b = gates.prefix, gates.retrieval, gates.bias
    cand = _Reader(candidate_metrics, "candidate")
    ref = _Reader(champion_metrics, "champion") if champion_metrics is not None else None
    checks: list[GateCheck] = []

    def relative(name, metric, margin, op, detail, scale=None):
        if margin is None:
            return
        c = cand(metric, name)
        if ref is None:
            checks.append(GateCheck(name=name, metric=metric, candidate=c, reference=None, threshold=None, op=op,
                                    passed=True, skipped=True, detail="no champion to compare with"))
            return
        v = ref(metric, name)
        threshold = scale(v, margin) if scale else (v + margin if op == ">=" else v - margin)
        ok = c >= threshold - _EPS if op == ">=" else c <= threshold + _EPS
        checks.append(GateCheck(name=name, metric=metric, candidate=c, reference=v, threshold=threshold, op=op, passed=ok, detail=detail))

    def absolute(name, metric, limit, op, detail, value=None):
        if limit is None:
            return
        c = cand(metric, name) if value is None else value
        ok = c >= limit - _EPS if op == ">=" else c <= limit + _EPS
        checks.append(GateCheck(name=name, metric=metric, candidate=c, reference=None, threshold=float(limit), op=op, passed=ok, detail=detail))

    # retrieval
    relative("retrieval.min_gain_mul", f"{p}.map.mul", r.min_gain_mul, ">=", f"Mul. mAP >= champion + {r.min_gain_mul}")
    if r.tolerance_mo is not None:
        relative("retrieval.tolerance_mo", f"{p}.map.mo", -r.tolerance_mo, ">=", f"Mo. mAP >= champion - {r.tolerance_mo}")
    if r.tolerance_cr is not None:
        relative("retrieval.tolerance_cr", f"{p}.map.cr", -r.tolerance_cr, ">=", f"Cr. mAP >= champion - {r.tolerance_cr}")
    if r.max_language_drop is not None:
        langs = languages_of(champion_metrics if champion_metrics is not None else candidate_metrics, p)
        if not langs:
            raise GateError(
                f"no per-language Mul. mAP ({p}.map.mul.LANG) in the "
                f"{'champion' if champion_metrics is not None else 'candidate'}'s metrics, needed by "
                "retrieval.max_language_drop; gate on a multilingual dataset or set it to null"
            )
        for lang in langs:
            relative(f"retrieval.language_drop.{lang}", f"{p}.map.mul.{lang}", -r.max_language_drop, ">=",
                     f"{lang} Mul. mAP >= champion's - {r.max_language_drop}")
    absolute("retrieval.floor_mul", f"{p}.map.mul", r.floor_mul, ">=", "absolute floor of Mul. mAP")
    absolute("retrieval.floor_mo", f"{p}.map.mo", r.floor_mo, ">=", "absolute floor of Mo. mAP")
    absolute("retrieval.floor_cr", f"{p}.map.cr", r.floor_cr, ">=", "absolute floor of Cr. mAP")

    # language bias
    relative("bias.rank_distance", f"{p}.rank_distance", b.rank_distance_min_reduction, "<=",
             f"mean rank distance <= champion x (1 - {b.rank_distance_min_reduction})",
             scale=lambda v, red: v * (1.0 - red))
    absolute("bias.rank_distance_ceiling", f"{p}.rank_distance", b.rank_distance_ceiling, "<=", "absolute ceiling of rank distance")
    if b.spread_ceiling is not None or b.max_spread_increase is not None:
        metric = f"{b.spread_measure}({p}.map.mul.LANG)"
        cand_langs = languages_of(candidate_metrics, p)
        if not cand_langs:
            raise GateError(f"no per-language Mul. mAP ({p}.map.mul.LANG) in the candidate's metrics, needed by the spread checks")
        c_spread = spread([cand(f"{p}.map.mul.{x}", "bias.spread") for x in cand_langs], b.spread_measure)
        absolute("bias.spread_ceiling", metric, b.spread_ceiling, "<=", f"per-language Mul. mAP {b.spread_measure} <= ceiling",
                 value=c_spread)
        if b.max_spread_increase is not None:
            name = "bias.spread_increase"
            if ref is None:
                checks.append(GateCheck(name=name, metric=metric, candidate=c_spread, reference=None, threshold=None, op="<=",
                                        passed=True, skipped=True, detail="no champion to compare with"))
            else:
                ref_langs = languages_of(champion_metrics, p)
                if not ref_langs:
                    raise GateError(f"no per-language Mul. mAP ({p}.map.mul.LANG) in the champion's metrics, needed by {name}")
                r_spread = spread([ref(f"{p}.map.mul.{x}", name) for x in ref_langs], b.spread_measure)
                threshold = r_spread + b.max_spread_increase
                checks.append(GateCheck(name=name, metric=metric, candidate=c_spread, reference=r_spread, threshold=threshold, op="<=",
                                        passed=c_spread <= threshold + _EPS, detail=f"spread <= champion's + {b.max_spread_increase}"))

    if not checks:
        raise GateConfigError(f"gate profile {gates.profile!r} has every check switched off; a gate must check something")
    status = "passed" if all(c.passed for c in checks) else "rejected"
    return GateDecision(
        status=status, checks=checks, profile=gates.profile, gates_version=gates.version,
        gates=gates.model_dump(mode="json"),
        reference={} if champion_metrics is not None else {"kind": "none"},
    )
