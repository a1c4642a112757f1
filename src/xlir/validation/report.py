"""What a validation found: one result per check, and a short summary for people."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

MAX_OVERLAPS = 5000
"""Leakage overlaps listed in a report; ``overlap_count`` still counts them all."""


class CheckResult(BaseModel):
    """One check of the contract (one Great Expectations expectation, or the parse step)."""

    name: str = Field(description="e.g. 'script[th]', 'leakage[question]', 'parse'")
    check: str = Field(description="the check family, e.g. 'script'")
    expectation: str = Field(description="Great Expectations expectation type, or 'parse'")
    passed: bool
    observed: Any = Field(None, description="share of rows passing, or the observed statistic")
    threshold: str | None = Field(None, description="what observed must satisfy, e.g. '>= 0.95'")
    failing_rows: int = 0
    rows_checked: int = 0
    description: str = ""
    examples: list[dict] = Field(default_factory=list)

    def line(self) -> str:
        """``FAIL script[th]: 0% of 3 rows pass, needs >= 95% (3 failing rows) - <description>``."""
        status = "ok  " if self.passed else "FAIL"
        if self.threshold and self.threshold.endswith(" of rows") and isinstance(self.observed, (int, float)):
            needed = float(self.threshold.split()[1])
            text = f"{status} {self.name}: {_pct(self.observed)} of {self.rows_checked} rows pass, needs >= {_pct(needed)}"
        else:
            text = f"{status} {self.name}:"
            if self.observed is not None:
                text += f" observed {_fmt(self.observed)}"
            if self.threshold:
                text += f", needs {self.threshold}"
        if self.failing_rows:
            text += f" ({self.failing_rows} failing row{'s' if self.failing_rows != 1 else ''})"
        return f"{text} - {self.description}" if self.description else text


class ValidationReport(BaseModel):
    """The outcome of running the contract on one dataset (one or several files)."""

    passed: bool
    suite: str
    suite_version: int
    files: list[str]
    rows: int = 0
    rows_per_language: dict[str, int] = Field(default_factory=dict)
    checks: list[CheckResult] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list, description="checks not run, and why")
    eval_datasets: list[str] = Field(default_factory=list)
    overlap_count: int = 0
    overlaps: list[dict] = Field(default_factory=list, description=f"leakage overlaps (first {MAX_OVERLAPS})")
    seconds: float = 0.0

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]

    def check(self, name: str) -> CheckResult:
        """The result of one check by name (``'script[th]'``); KeyError if it did not run."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def summary(self, max_examples: int = 3) -> str:
        """A few lines for a terminal: verdict, counts, every failed check with examples."""
        langs = ", ".join(f"{k} {v}" for k, v in sorted(self.rows_per_language.items()))
        verdict = "PASSED" if self.passed else "FAILED"
        lines = [
            f"{verdict}: {len(self.failed)} of {len(self.checks)} checks failed "
            f"({self.suite} v{self.suite_version}; {len(self.files)} file{'s' if len(self.files) != 1 else ''}, "
            f"{self.rows} rows{': ' + langs if langs else ''})"
        ]
        for c in self.failed:
            lines.append("  " + c.line())
            for ex in c.examples[:max_examples]:
                lines.append("      e.g. " + _example(ex))
        for note in self.skipped:
            lines.append(f"  skipped: {note}")
        if self.overlap_count:
            listed = "all" if self.overlap_count <= len(self.overlaps) else f"the first {len(self.overlaps)}"
            lines.append(
                f"  {self.overlap_count} strings overlap evaluation data ({', '.join(self.eval_datasets)}); "
                f"{listed} are listed in the JSON report (overlaps)"
            )
        return "\n".join(lines)

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=2), encoding="utf-8")
        return path


def _pct(share: float) -> str:
    text = f"{100 * share:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _example(ex: dict) -> str:
    where = ex.get("file", "")
    if "row" in ex:
        where += f" row {ex['row']}"
    rest = ", ".join(
        str(v) if k == "error" else f"{k}={_short(v)}" for k, v in ex.items() if k not in ("file", "row")
    )
    return ": ".join(part for part in (where, rest) if part)


def _short(value, limit: int = 70) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
