"""Leakage guard: no training question or answer sentence may come from an evaluation set.

Strings are compared after normalisation (NFKC, casefold, whitespace collapsed). A string with
fewer than ``leakage_min_letters`` letters after normalisation identifies nothing (``"ए."``,
``"…"``, a lone number): MLQA-R and XQuAD-R share three such sentences, and they never count.

On the evaluation side every question, answer sentence and candidate sentence (the whole
retrieval pool) is indexed: training on a sentence the evaluation ranks is leakage too. The
normalised index of each evaluation dataset is built once per process and cached.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from pathlib import Path

from xlir.errors import XlirError


def normalise(text: str) -> str:
    """NFKC, casefold, whitespace collapsed to single spaces and stripped."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def has_letters(text: str, n: int) -> bool:
    """Whether ``text`` holds at least ``n`` letters (stops counting once it has)."""
    if n <= 0:
        return True
    for ch in text:
        if ch.isalpha():
            n -= 1
            if n == 0:
                return True
    return False


def eval_index(specs: list[str], min_letters: int) -> dict[str, str]:
    """Normalised string -> the first evaluation dataset (spec) holding it."""
    index: dict[str, str] = {}
    for spec in specs:
        for text in _strings(spec, _path_stamp(spec), min_letters):
            index.setdefault(text, spec)
    return index


def _path_stamp(spec: str) -> tuple:
    """Part of the cache key: a user's eval path is re-read when its files change."""
    path = Path(spec)
    if not path.exists():
        return ()
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    return tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files if f.is_file())


@lru_cache(maxsize=16)
def _strings(spec: str, _stamp: tuple, min_letters: int) -> frozenset[str]:
    texts = _load_texts(spec)
    out = set()
    for text in texts:
        if not isinstance(text, str):
            continue
        norm = normalise(text)
        if has_letters(norm, min_letters):
            out.add(norm)
    return frozenset(out)


def _load_texts(spec: str):
    from xlir.data.registry import SOURCES, load_dataset

    name, _, split = spec.partition(":")
    if name in SOURCES:
        ds = load_dataset(name, split=split or None)
        yield from ds.questions["question"]
        yield from ds.questions["answer_sentence"]
        yield from ds.candidates["sentence"]
        return
    path = Path(spec).expanduser()
    if not path.exists():
        raise XlirError(
            f"evaluation dataset '{spec}' is neither a known dataset ({', '.join(sorted(SOURCES))}, "
            "optionally name:split) nor an existing file or folder"
        )
    from xlir.validation.parse import data_files, parse_file

    for file in data_files(path):
        parsed = parse_file(file)
        if parsed.error:
            raise XlirError(f"evaluation dataset '{spec}': {file}: {parsed.error}")
        for column in ("question", "answer_sentence"):
            if column in parsed.questions:
                yield from parsed.questions[column]
        if parsed.candidates is not None:
            yield from parsed.candidates["sentence"]


def clear_cache() -> None:
    """Forget the cached evaluation indexes (tests; a long-lived worker after data changes)."""
    _strings.cache_clear()


__all__ = ["clear_cache", "eval_index", "has_letters", "normalise"]
