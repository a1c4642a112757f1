"""Users' files into question rows, with every failure turned into a message instead of a raise.

Three formats are accepted (``--format``; ``auto`` decides by suffix, then by content):

- ``lareqa``: LAReQA/SQuAD-style JSON, one language per file. The language is ``--lang`` when
  given, else the file's ``language`` field, else its name (``de.json``, ``train.de.json``).
- ``jsonl``: JSON Lines, one object per line in the canonical question columns.
- ``parquet``: the same columns in a Parquet file.

LAReQA files go through ``xlir.data.readers.read_lareqa`` (canonical rows and candidates), and
``xlir.validation.formats`` lists what else they state (answer texts and starts, sentence breaks,
their language), for the contract to check against what the reader used. Tables
are read raw, values untouched, so the contract can report a wrong type or a missing column
instead of the reader failing on it; ``canonical_tables`` completes them once they are valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from xlir.data.readers import read_rows
from xlir.errors import DataFormatError, XlirError
from xlir.validation.languages import language_from_name

FORMATS = ("auto", "lareqa", "jsonl", "parquet")
SUFFIX_FORMATS = {".json": "lareqa", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


@dataclass
class ParsedFile:
    """One file's question rows (``questions``, with ``_row``: its line or position) or ``error``
    (what is wrong with it, without the path). ``annotations``: for a LAReQA file, one row per
    item the format states besides the rows (``xlir.validation.formats``)."""

    path: Path
    fmt: str
    questions: pd.DataFrame | None = None
    candidates: pd.DataFrame | None = None
    error: str | None = None
    annotations: pd.DataFrame | None = None

    @property
    def name(self) -> str:
        return self.path.name


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise XlirError(f"unknown format '{fmt}'; use one of {', '.join(FORMATS)}")
    return fmt


def is_data_file(path: Path) -> bool:
    return path.suffix.lower() in SUFFIX_FORMATS and not path.name.startswith((".", "_"))


def data_files(path: Path) -> list[Path]:
    """A file as given; a folder's data files (by suffix, hidden and ``_`` names skipped), sorted."""
    path = Path(path)
    if path.is_dir():
        return sorted(
            p for p in path.rglob("*")
            if p.is_file() and is_data_file(p)
            and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)
        )
    return [path]


def detect_format(path: Path, fmt: str = "auto") -> str | None:
    """The format to read ``path`` as: the one asked for, else by suffix, else by content
    (None when the content looks like none of them)."""
    if fmt != "auto":
        return fmt
    by_suffix = SUFFIX_FORMATS.get(path.suffix.lower())
    if by_suffix:
        return by_suffix
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return None
    if head.startswith(b"PAR1"):
        return "parquet"
    lines = [line.strip() for line in head.lstrip(b"\xef\xbb\xbf").splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith(b"{") and lines[1].startswith(b"{"):
        return "jsonl"
    if lines and lines[0][:1] in (b"{", b"["):
        return "lareqa"
    return None


def parse_file(path: str | Path, fmt: str = "auto", lang: str | None = None) -> ParsedFile:
    """Read one file; unreadable input comes back as ``ParsedFile.error``, never as a raise."""
    path = Path(path)
    check_format(fmt)
    try:
        if not path.is_file():
            raise DataFormatError(path, "not a file")
        if path.stat().st_size == 0:
            raise DataFormatError(path, "file is empty")
        detected = detect_format(path, fmt)
        if detected is None:
            raise DataFormatError(path, "unknown format: name the file .json (LAReQA), .jsonl or .parquet, or pass --format")
        fmt = detected
        if fmt == "lareqa":
            questions, candidates, annotations = _read_lareqa(path, lang)
            return ParsedFile(path, fmt, questions, candidates, annotations=annotations)
        frame = read_rows(path, fmt)
        if lang is not None and "lang" not in frame.columns:
            frame["lang"] = lang
        return ParsedFile(path, fmt, frame)
    except DataFormatError as e:
        text = str(e)
        return ParsedFile(path, fmt, error=text.removeprefix(f"{e.path}: "))
    except OSError as e:
        return ParsedFile(path, fmt, error=f"cannot read file: {e.strerror or e}")
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, RecursionError) as e:
        # read_lareqa trusts the inner types of some fields (sentence_breaks, language)
        return ParsedFile(path, fmt, error=f"not a readable {fmt} file ({e.__class__.__name__}: {e})")


def _read_lareqa(path: Path, lang: str | None):
    from xlir.data.readers import _load_json, read_lareqa
    from xlir.validation.formats import lareqa_annotations

    questions, candidates = read_lareqa(path, lang=lang, source=path.stem)
    if lang is None and len(questions) and (questions["lang"] == path.stem).all():
        named = language_from_name(path.stem)
        if named and named != path.stem:
            questions, candidates = read_lareqa(path, lang=named, source=path.stem)
    questions = questions.copy()
    questions["_row"] = range(1, len(questions) + 1)
    return questions, candidates, lareqa_annotations(_load_json(path), path, lang)


def canonical_tables(parsed: ParsedFile) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The canonical question and candidate tables of a file that passed the contract."""
    from xlir.data.readers import canonical_from_rows

    questions = parsed.questions.drop(columns=["_row"])
    if parsed.candidates is not None:
        return questions.reset_index(drop=True), parsed.candidates.reset_index(drop=True)
    frame = questions.copy()
    frame["parallel_id"] = frame["parallel_id"].astype(str)
    if "source" in frame and frame["source"].isna().any():
        frame["source"] = frame["source"].fillna(parsed.path.stem)
    return canonical_from_rows(frame, parsed.path.stem)
