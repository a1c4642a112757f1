"""Run the data contract on one dataset: parse every file, check each file's structure and (LAReQA
files) what the format states besides the rows, then the content of their union (cross-language
checks see all files together)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from xlir.errors import XlirError
from xlir.validation.config import ValidationConfig
from xlir.validation.parse import ParsedFile, check_format, data_files, parse_file
from xlir.validation.report import MAX_OVERLAPS, CheckResult, ValidationReport
from xlir.validation.suite import (
    GxSession, annotation_frame, content_frame, load_suite, merge, structure_frame, to_check,
)


@dataclass
class Validation:
    """A report and the parsed files behind it (``ingest`` writes the valid ones out)."""

    report: ValidationReport
    files: list[ParsedFile]


def validate_files(
    paths,
    fmt: str = "auto",
    lang: str | None = None,
    config: ValidationConfig | None = None,
    data_docs_dir: str | Path | None = None,
) -> ValidationReport:
    """Validate files (or folders of files) as one dataset against the contract.

    ``fmt``: auto, lareqa, jsonl or parquet; ``lang``: the language of LAReQA files (and of
    tables without a ``lang`` column). Unreadable files fail the ``parse`` check; missing paths
    raise ``XlirError``. ``data_docs_dir``: also write a Great Expectations Data Docs site there.
    """
    return run_validation(expand_paths(paths), fmt, lang, config, data_docs_dir).report


def expand_paths(paths) -> list[Path]:
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise XlirError(f"{path}: no such file or folder")
        found = data_files(path)
        if not found:
            raise XlirError(f"{path}: the folder holds no data files (.json, .jsonl, .ndjson, .parquet)")
        files.extend(found)
    if not files:
        raise XlirError("no files to validate")
    return list(dict.fromkeys(files))


def run_validation(
    files: list[Path],
    fmt: str = "auto",
    lang: str | None = None,
    config: ValidationConfig | None = None,
    data_docs_dir: str | Path | None = None,
) -> Validation:
    started = time.perf_counter()
    config = config or ValidationConfig()
    check_format(fmt)
    suite = load_suite()
    names = _display_names(files)
    parsed = [parse_file(f, fmt, lang) for f in files]
    report = ValidationReport(
        passed=False, suite=suite.name, suite_version=suite.version, files=[names[p.path] for p in parsed],
        eval_datasets=list(config.eval_datasets),
    )
    unreadable = [p for p in parsed if p.error]
    report.checks.append(
        CheckResult(
            name="parse", check="parse", expectation="parse", passed=not unreadable,
            observed=f"{len(parsed) - len(unreadable)} of {len(parsed)} files readable", threshold="all files readable",
            description="every file can be read in its format",
            examples=[{"file": names[p.path], "error": p.error} for p in unreadable],
        )
    )
    readable = [p for p in parsed if not p.error]
    if not readable:
        report.skipped.append("all other checks: no file could be read")
        return _finish(report, parsed, started)

    max_examples = config.max_examples
    session = GxSession(data_docs_dir)
    by_name: dict[str, list[CheckResult]] = {}
    structurally_sound: list[ParsedFile] = []
    for n, pf in enumerate(readable):
        context = pf.questions.assign(_file=names[pf.path])
        frame = structure_frame(pf.questions)
        entries = suite.entries("structure", config)
        results = session.run(frame, entries, _gx_name(suite.name, "structure", str(n + 1), pf.name), max_examples)
        sound = True
        for entry in entries:
            check = to_check(entry, results[entry.name], frame, context, max_examples)
            if not check.passed and not check.examples:
                check.examples = [{"file": names[pf.path], "observed": check.observed}]
            sound &= check.passed
            by_name.setdefault(check.name, []).append(check)
        if sound:
            structurally_sound.append(pf)
    for n, pf in enumerate(readable):  # LAReQA files: what the format states besides the rows
        if pf.annotations is None:
            continue
        context = pf.annotations.assign(_file=names[pf.path])
        frame = annotation_frame(pf.annotations)
        entries = suite.entries("lareqa", config)
        results = session.run(frame, entries, _gx_name(suite.name, "lareqa", str(n + 1), pf.name), max_examples)
        for entry in entries:
            by_name.setdefault(entry.name, []).append(to_check(entry, results[entry.name], frame, context, max_examples))
    report.checks.extend(merge(checks) for checks in by_name.values())
    report.rows = sum(len(p.questions) for p in readable)

    if not structurally_sound:
        report.skipped.append("content checks: no file passed the structure checks")
        return _finish(report, parsed, started)
    if len(structurally_sound) < len(parsed):
        report.skipped.append(
            f"content checks ran on {len(structurally_sound)} of {len(parsed)} files "
            "(the others failed parsing or structure)"
        )
    union = pd.concat(
        [p.questions.assign(_file=names[p.path]) for p in structurally_sound], ignore_index=True
    )
    eval_index = {}
    if config.eval_datasets:
        from xlir.validation.leakage import eval_index as build_index

        eval_index = build_index(config.eval_datasets, config.thresholds.leakage_min_letters)
    else:
        report.skipped.append("leakage: no evaluation datasets configured")
    frame = content_frame(union, config, eval_index)
    languages = sorted(
        {v for v in frame["lang"] if isinstance(v, str) and v in config.languages and config.expected_scripts(v)}
    )
    entries = suite.entries("content", config, languages)
    results = session.run(frame, entries, _gx_name(suite.name, "content"), max_examples)
    report.checks.extend(to_check(e, results[e.name], frame, union, max_examples) for e in entries)
    report.rows_per_language = {
        str(k): int(v) for k, v in union["lang"].map(lambda v: v if isinstance(v, str) else repr(v)).value_counts().items()
    }
    _list_overlaps(report, frame, union)
    return _finish(report, parsed, started)


def _finish(report: ValidationReport, parsed: list[ParsedFile], started: float) -> Validation:
    report.passed = all(c.passed for c in report.checks)
    report.seconds = round(time.perf_counter() - started, 3)
    if not report.rows_per_language:
        report.rows_per_language = {}
    return Validation(report, parsed)


def _list_overlaps(report: ValidationReport, frame: pd.DataFrame, union: pd.DataFrame) -> None:
    overlaps = []
    for field, leak in (("question", "question_leak"), ("answer_sentence", "answer_sentence_leak")):
        hits = frame.index[frame[leak].notna()]
        for i in hits:
            overlaps.append(
                {
                    "file": union.at[i, "_file"], "row": int(union.at[i, "_row"]),
                    "parallel_id": str(union.at[i, "parallel_id"]), "lang": union.at[i, "lang"],
                    "field": field, "text": union.at[i, field], "eval_dataset": frame.at[i, leak],
                }
            )
    report.overlap_count = len(overlaps)
    report.overlaps = overlaps[:MAX_OVERLAPS]


def _gx_name(*parts: str) -> str:
    """A GE suite name that is also a clean file name in Data Docs (GE turns dots into folders)."""
    return "-".join(re.sub(r"[^A-Za-z0-9_-]+", "_", p) for p in parts)


def _display_names(files: list[Path]) -> dict[Path, str]:
    """File names where they are unique, else paths relative to the files' common folder."""
    names = [f.name for f in files]
    if len(set(names)) == len(names):
        return dict(zip(files, names))
    import os

    root = Path(os.path.commonpath([str(f.resolve().parent) for f in files]))
    return {f: str(f.resolve().relative_to(root)) for f in files}
