"""The expectation suite: ``suite.yaml`` read, derived columns computed, Great Expectations run.

Great Expectations 1.x is called directly (no Airflow provider) on pandas DataFrames through an
ephemeral context; it is imported on first use only, since importing it takes seconds.
Per-row facts GE cannot compute (script share, answer in paragraph, leakage, normalised
duplicates, parallel coverage) become columns first, and built-in expectations check those.
"""

from __future__ import annotations

import math
import os
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from xlir.errors import XlirError
from xlir.validation.config import ValidationConfig
from xlir.validation.leakage import has_letters, normalise
from xlir.validation.languages import script_share
from xlir.validation.report import CheckResult
from xlir.validation.text import problem as text_problem

SUITE_PATH = Path(__file__).with_name("suite.yaml")
REQUIRED = ("parallel_id", "lang", "question", "answer_sentence", "paragraph")
TEXT = ("question", "answer_sentence", "paragraph")


@dataclass(frozen=True)
class Entry:
    """One expectation of the suite, resolved against a configuration."""

    name: str
    check: str
    expectation: str
    kwargs: dict
    description: str = ""
    show: tuple[str, ...] = ()
    examples_from: str | None = None
    lang: str | None = None


@dataclass(frozen=True)
class Suite:
    name: str
    version: int
    stages: dict[str, list[dict]] = field(default_factory=dict)

    def entries(self, stage: str, config: ValidationConfig, languages: list[str] = ()) -> list[Entry]:
        """The stage's expectations with ``$`` values filled in and ``for_each``/``per_language`` expanded."""
        out: list[Entry] = []
        for spec in self.stages[stage]:
            if spec.get("needs") == "eval_datasets" and not config.eval_datasets:
                continue
            kwargs = {k: _resolve(v, config) for k, v in (spec.get("kwargs") or {}).items()}
            common = dict(
                check=spec["check"],
                expectation=spec["expectation"],
                description=" ".join(str(spec.get("description", "")).split()),
                show=tuple(spec.get("show", ())),
                examples_from=spec.get("examples_from"),
            )
            if "for_each" in spec:
                for item in spec["for_each"]:
                    column, label = (item["column"], item["label"]) if isinstance(item, dict) else (item, item)
                    out.append(Entry(name=f"{spec['check']}[{label}]", kwargs={**kwargs, "column": column}, **common))
            elif spec.get("per_language"):
                for lang in languages:
                    out.append(Entry(name=f"{spec['check']}[{lang}]", kwargs=dict(kwargs), lang=lang, **common))
            else:
                label = spec.get("label")
                out.append(Entry(name=f"{spec['check']}[{label}]" if label else spec["check"], kwargs=kwargs, **common))
        return out


@lru_cache(maxsize=4)
def load_suite(path: str | Path = SUITE_PATH) -> Suite:
    import yaml

    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or not {"name", "version", "stages"} <= set(doc):
        raise XlirError(f"{path}: an expectation suite needs name, version and stages")
    return Suite(name=doc["name"], version=int(doc["version"]), stages=doc["stages"])


def _resolve(value, config: ValidationConfig):
    if isinstance(value, str) and value.startswith("$"):
        key = value[1:]
        if key == "languages":
            return list(config.languages)
        if key not in type(config.thresholds).model_fields:
            raise XlirError(f"suite refers to unknown threshold '{value}'")
        return getattr(config.thresholds, key)
    if isinstance(value, list):
        return [_resolve(v, config) for v in value]
    return value


# ---------------------------------------------------------------- derived columns


def _is_text_list(value) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    if isinstance(value, (list, tuple, np.ndarray)):
        return all(isinstance(v, str) for v in value)
    return False


def _is_text_or_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or isinstance(value, str)


def structure_frame(questions: pd.DataFrame) -> pd.DataFrame:
    """The columns the structure stage looks at, as plain Python objects."""
    frame = pd.DataFrame(index=questions.index)
    for column in REQUIRED:
        if column in questions.columns:
            frame[column] = questions[column].astype(object)
    negatives = questions["negatives"] if "negatives" in questions.columns else [None] * len(questions)
    frame["negatives_is_text_list"] = [_is_text_list(v) for v in negatives]
    sources = questions["source"] if "source" in questions.columns else [None] * len(questions)
    frame["source_is_text"] = [_is_text_or_missing(v) for v in sources]
    return frame


def annotation_frame(annotations: pd.DataFrame) -> pd.DataFrame:
    """A LAReQA file's items (``xlir.validation.formats``) as plain Python objects."""
    return annotations.astype(object).where(annotations.notna(), None)


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def _collapse(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).split())


def _text_list(value) -> list[str]:
    """The strings of a negatives cell (a list or array; anything else holds none)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [v for v in value if isinstance(v, str)]
    return []


def _first(check, texts: list[str]) -> str | None:
    for n, text in enumerate(texts):
        found = check(text)
        if found:
            return f"negative {n + 1}: {found}"
    return None


def _cut(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def content_frame(questions: pd.DataFrame, config: ValidationConfig, eval_index: dict[str, str]) -> pd.DataFrame:
    """Required columns plus the per-row facts the content stage checks."""
    frame = pd.DataFrame(index=questions.index)
    for column in REQUIRED:
        frame[column] = questions[column].astype(object)
    langs = [v if isinstance(v, str) else None for v in frame["lang"]]
    q_text = [_text(v) for v in frame["question"]]
    a_text = [_text(v) for v in frame["answer_sentence"]]
    p_text = [_text(v) for v in frame["paragraph"]]

    scripts = {lang: config.expected_scripts(lang) for lang in set(langs) if lang}
    frame["script_share"] = [
        script_share(q + " " + a, scripts[lang]) if lang and scripts.get(lang) else float("nan")
        for q, a, lang in zip(q_text, a_text, langs)
    ]
    frame["answer_in_paragraph"] = [
        bool(a) and (a in p or _collapse(a) in _collapse(p)) for a, p in zip(a_text, p_text)
    ]
    negatives = [_text_list(v) for v in questions["negatives"]] if "negatives" in questions.columns else [
        [] for _ in range(len(frame))
    ]
    memo: dict[str, str | None] = {}

    def chars(text: str) -> str | None:
        if text not in memo:
            memo[text] = text_problem(text)
        return memo[text]

    frame["question_chars"] = [chars(t) for t in q_text]
    frame["answer_sentence_chars"] = [chars(t) for t in a_text]
    frame["paragraph_chars"] = [chars(t) for t in p_text]
    frame["negatives_chars"] = [_first(chars, negs) for negs in negatives]
    frame["negatives_blank"] = [
        next((f"negative {n + 1} of {len(negs)} is {neg!r}" for n, neg in enumerate(negs) if not neg.strip()), None)
        for negs in negatives
    ]
    collapsed: dict[str, str] = {}

    def collapse(text: str) -> str:
        if text not in collapsed:
            collapsed[text] = _collapse(text)
        return collapsed[text]

    frame["negative_outside_paragraph"] = [
        next((f"negative {n + 1}: {_cut(neg)}" for n, neg in enumerate(negs)
              if neg.strip() and neg not in p and collapse(neg) not in collapse(p)), None)
        for negs, p in zip(negatives, p_text)
    ]
    frame["answer_among_negatives"] = [
        next((f"negative {n + 1} is the answer sentence" for n, neg in enumerate(negs)
              if a and collapse(neg) == collapse(a)), None)
        for negs, a in zip(negatives, a_text)
    ]
    q_norm = [normalise(q) for q in q_text]
    keys = pd.Series([f"{lang}\x1f{q}" for lang, q in zip(langs, q_norm)], index=frame.index)
    frame["question_repeat"] = keys.duplicated().astype(float) * np.array([bool(q) for q in q_norm])

    # ids are compared as the canonical table stores them: 7 and "7" are the same id
    pids = frame["parallel_id"].map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    frame["parallel_id"] = pids.astype(object)
    lang_count = pd.Series(langs, index=frame.index).groupby(pids).transform("nunique")
    first = ~pids.duplicated() & pids.notna()
    frame["parallel_id_multilingual"] = np.where(first, (lang_count >= 2).astype(float), np.nan)
    frame["parallel_id_monolingual"] = first & (lang_count < 2)

    min_letters = config.thresholds.leakage_min_letters

    def leak(norm: str):
        return eval_index.get(norm) if norm and has_letters(norm, min_letters) else None

    if eval_index:
        frame["question_leak"] = [leak(n) for n in q_norm]
        frame["answer_sentence_leak"] = [leak(normalise(a)) for a in a_text]
    else:
        frame["question_leak"] = None
        frame["answer_sentence_leak"] = None
    return frame


# ---------------------------------------------------------------- Great Expectations


class GxSession:
    """One ephemeral Great Expectations context; optionally a Data Docs site on disk."""

    SITE = "xlir"

    def __init__(self, data_docs_dir: str | Path | None = None):
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.gx = gx
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        self.data_docs_dir = Path(data_docs_dir) if data_docs_dir else None
        if self.data_docs_dir:
            self.context.add_data_docs_site(
                site_name=self.SITE,
                site_config={
                    "class_name": "SiteBuilder",
                    "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(self.data_docs_dir)},
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                    # the data's values rendered as text, never as markup
                    "site_section_builders": {
                        "validations": {"renderer": {"module_name": "xlir.validation.data_docs",
                                                     "class_name": "TextValuesValidationRenderer"}},
                    },
                },
            )
        asset = self.context.data_sources.add_pandas("xlir").add_dataframe_asset("questions")
        self.batch_definition = asset.add_batch_definition_whole_dataframe("whole")
        self._runs = 0

    def expectation(self, entry: Entry):
        from great_expectations.expectations.row_conditions import Column

        cls = getattr(self.gx.expectations, entry.expectation, None)
        if cls is None:
            raise XlirError(f"suite: '{entry.expectation}' is not a Great Expectations expectation")
        kwargs = dict(entry.kwargs)
        if entry.lang is not None:
            kwargs["row_condition"] = Column("lang") == entry.lang
        return cls(**kwargs, description=entry.description or None, meta={"xlir_check": entry.name})

    def run(self, frame: pd.DataFrame, entries: list[Entry], suite_name: str, max_examples: int):
        """Validate ``frame``; the GE results keyed by check name."""
        gx = self.gx
        self._runs += 1
        suite = self.context.suites.add(
            gx.ExpectationSuite(name=suite_name, expectations=[self.expectation(e) for e in entries])
        )
        result_format = {"result_format": "SUMMARY", "partial_unexpected_count": max(1, max_examples)}
        if self.data_docs_dir is None:
            batch = self.batch_definition.get_batch(batch_parameters={"dataframe": frame})
            result = batch.validate(suite, result_format=result_format)
        else:
            from great_expectations.checkpoint import UpdateDataDocsAction

            definition = self.context.validation_definitions.add(
                gx.ValidationDefinition(name=f"{suite_name}#{self._runs}", data=self.batch_definition, suite=suite)
            )
            checkpoint = self.context.checkpoints.add(
                gx.Checkpoint(
                    name=f"checkpoint#{self._runs}",
                    validation_definitions=[definition],
                    actions=[UpdateDataDocsAction(name="data_docs", site_names=[self.SITE])],
                    result_format=result_format,
                )
            )
            outcome = checkpoint.run(batch_parameters={"dataframe": frame})
            (result,) = outcome.run_results.values()
        return {r.expectation_config.meta["xlir_check"]: r for r in result.results}


def to_check(entry: Entry, result, frame: pd.DataFrame, context: pd.DataFrame, max_examples: int) -> CheckResult:
    """A GE expectation result as a ``CheckResult`` with example rows from ``context``."""
    res = dict(result.result or {})
    check = CheckResult(
        name=entry.name, check=entry.check, expectation=result.expectation_config.type,
        passed=bool(result.success), description=entry.description,
    )
    exception = (result.exception_info or {}).get("exception_message") if result.exception_info else None
    if exception and result.exception_info.get("raised_exception"):
        check.observed = f"error: {exception}"
        check.passed = False
        return check
    kw = entry.kwargs
    if "unexpected_count" in res:
        checked = int(res.get("element_count", 0)) - int(res.get("missing_count") or 0)
        failing = int(res["unexpected_count"])
        check.rows_checked, check.failing_rows = checked, failing
        check.observed = round(1 - failing / checked, 4) if checked else 1.0
        check.threshold = f">= {kw.get('mostly', 1.0)} of rows"
        indices = list(res.get("partial_unexpected_index_list") or [])
        if indices and isinstance(indices[0], dict):  # index given as column values
            indices = []
        check.examples = [_example(context, frame, i, entry) for i in indices[:max_examples] if i in context.index]
        return check
    if entry.expectation == "ExpectColumnToExist":
        check.observed = "present" if check.passed else "missing"
        check.threshold = "present"
        check.failing_rows = 0 if check.passed else len(frame)
        if not check.passed:
            check.examples = [{"file": str(context["_file"].iloc[0])}] if len(context) else []
        return check
    observed = res.get("observed_value")
    check.observed = _plain(observed)
    low, high = kw.get("min_value"), kw.get("max_value")
    if "type_list" in kw:  # a typed (non-object) column: the dtype is the observation
        check.threshold = f"one of {kw['type_list']}"
        if not check.passed:
            check.failing_rows = len(frame)
            check.examples = [_example(context, frame, i, entry) for i in list(frame.index[:max_examples])]
        return check
    if low is not None and high is not None:
        check.threshold = f"between {low} and {high}"
    elif low is not None:
        check.threshold = f">= {low}"
    elif high is not None:
        check.threshold = f"<= {high}"
    check.rows_checked = len(frame)
    if entry.examples_from and entry.examples_from in frame:
        flagged = frame.index[frame[entry.examples_from].fillna(0).astype(bool)]
        check.failing_rows = len(flagged)
        if not check.passed:
            check.examples = [_example(context, frame, i, entry) for i in flagged[:max_examples]]
    elif not check.passed and entry.check == "language_count":
        check.examples = [{"languages": sorted({str(v) for v in frame["lang"].dropna()})}]
    return check


def _example(context: pd.DataFrame, frame: pd.DataFrame, index, entry: Entry) -> dict:
    row = context.loc[index]
    out = {"file": str(row["_file"])}
    if "_row" in row.index:  # a line or row number; LAReQA items name their place in ``where``
        out["row"] = int(row["_row"])
    column = entry.kwargs.get("column")
    columns = list(entry.show)
    if column and column not in columns and not column.endswith("_ok"):  # *_ok: the *_problem column says more
        columns.append(column)
    for name in entry.kwargs.get("column_list", ()):
        if name not in columns:
            columns.append(name)
    for name in columns:
        if name in frame.columns:
            out[name] = _plain(frame.at[index, name])
        elif name in context.columns:
            out[name] = _plain(context.at[index, name])
    return out


def _plain(value):
    """A JSON-friendly version of a cell: long strings cut, arrays as lists, NaN as None."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, str) and len(value) > 200:
        return value[:200] + f"... ({len(value)} characters)"
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value[:5]] + (["..."] if len(value) > 5 else [])
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return repr(value)[:200]


def merge(checks: list[CheckResult]) -> CheckResult:
    """Several files' results of one check as one: all must pass; rows and examples add up."""
    first = checks[0]
    if len(checks) == 1:
        return first
    merged = first.model_copy(deep=True)
    merged.passed = all(c.passed for c in checks)
    merged.failing_rows = sum(c.failing_rows for c in checks)
    merged.rows_checked = sum(c.rows_checked for c in checks)
    failed = [c for c in checks if not c.passed]
    if merged.rows_checked and isinstance(first.observed, float):
        merged.observed = round(1 - merged.failing_rows / merged.rows_checked, 4)
    elif failed:
        merged.observed = failed[0].observed
    merged.examples = [ex for c in failed for ex in c.examples]
    return merged


__all__ = [
    "GxSession", "Suite", "annotation_frame", "content_frame", "load_suite", "merge", "structure_frame", "to_check",
]
