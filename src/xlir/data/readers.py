"""Readers from the formats xlir accepts into the canonical tables (see ``schema``).

Each reader returns ``(questions, candidates)`` DataFrames and raises ``DataFormatError`` naming
the file and the field for input it cannot read; it never guesses silently.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from pathlib import Path

import pandas as pd

from xlir.data.schema import (
    CANDIDATE_COLUMNS,
    QUESTION_COLUMNS,
    REQUIRED_USER_COLUMNS,
    candidate_id,
)
from xlir.errors import DataFormatError

Tables = tuple[pd.DataFrame, pd.DataFrame]


def _load_json(path: Path):
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataFormatError(path, f"cannot read file: {e.strerror}") from None
    if not raw.strip():
        raise DataFormatError(path, "file is empty")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataFormatError(path, f"not UTF-8 text (byte {e.start}); save the file as UTF-8") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataFormatError(path, f"not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None


def _field(obj, key, kind, path, where):
    if not isinstance(obj, dict) or key not in obj:
        raise DataFormatError(path, f"{where}: missing field '{key}'")
    value = obj[key]
    if not isinstance(value, kind):
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise DataFormatError(path, f"{where}: field '{key}' should be {name}, got {type(value).__name__}")
    return value


def _frames(questions: list[dict], candidates: list[dict]) -> Tables:
    return (
        pd.DataFrame(questions, columns=list(QUESTION_COLUMNS)),
        pd.DataFrame(candidates, columns=list(CANDIDATE_COLUMNS)),
    )


def read_lareqa(path: str | Path, lang: str | None = None, source: str = "") -> Tables:
    """One LAReQA/SQuAD-style file (one language) with ``sentences`` and ``sentence_breaks``.

    The answer sentence is the one whose span holds the first answer's ``answer_start``;
    every sentence of every paragraph becomes a candidate.
    """
    path = Path(path)
    doc = _load_json(path)
    lang = lang or (doc.get("language") if isinstance(doc, dict) else None) or path.stem
    source = source or path.stem
    articles = _field(doc, "data", list, path, "top level")
    questions: list[dict] = []
    candidates: list[dict] = []
    for a, article in enumerate(articles):
        for p, para in enumerate(_field(article, "paragraphs", list, path, f"data[{a}]")):
            where = f"data[{a}].paragraphs[{p}]"
            context = _field(para, "context", str, path, where)
            sentences = _field(para, "sentences", list, path, where)
            breaks = _field(para, "sentence_breaks", list, path, where)
            if len(sentences) != len(breaks) or not sentences:
                raise DataFormatError(
                    path, f"{where}: {len(sentences)} sentences but {len(breaks)} sentence_breaks"
                )
            starts = [int(b[0]) for b in breaks]
            paragraph_id = f"{a}-{p}"
            answers_of: list[list[str]] = [[] for _ in sentences]
            for k, qa in enumerate(_field(para, "qas", list, path, where)):
                qwhere = f"{where}.qas[{k}]"
                qid = str(_field(qa, "id", (str, int), path, qwhere))
                answers = _field(qa, "answers", list, path, qwhere)
                if not answers:
                    raise DataFormatError(path, f"{qwhere}: question '{qid}' has no answers")
                hit = []
                for answer in answers:
                    start = _field(answer, "answer_start", int, path, qwhere + ".answers")
                    if not 0 <= start < len(context):
                        raise DataFormatError(
                            path, f"{qwhere}: answer_start {start} lies outside the paragraph"
                        )
                    hit.append(max(0, bisect.bisect_right(starts, start) - 1))
                for i in dict.fromkeys(hit):
                    answers_of[i].append(qid)
                i = hit[0]
                questions.append(
                    {
                        "parallel_id": qid,
                        "lang": lang,
                        "question": _field(qa, "question", str, path, qwhere),
                        "answer_sentence": sentences[i],
                        "paragraph": context,
                        "negatives": [s for j, s in enumerate(sentences) if j != i],
                        "source": source,
                        "answer_candidate_id": candidate_id(lang, paragraph_id, i),
                    }
                )
            for i, sentence in enumerate(sentences):
                candidates.append(
                    {
                        "candidate_id": candidate_id(lang, paragraph_id, i),
                        "lang": lang,
                        "paragraph_id": paragraph_id,
                        "sentence_index": i,
                        "sentence": sentence,
                        "paragraph": context,
                        "parallel_ids": answers_of[i],
                    }
                )
    return _frames(questions, candidates)


def read_dream(path: str | Path, source: str = "dream") -> Tables:
    """DREAM: question -> dialogue retrieval; a candidate is a whole dialogue (English)."""
    path = Path(path)
    doc = _load_json(path)
    if not isinstance(doc, list):
        raise DataFormatError(path, "DREAM file should be a JSON list of [turns, questions, id]")
    questions: list[dict] = []
    candidates: list[dict] = []
    for n, item in enumerate(doc):
        if not (isinstance(item, list) and len(item) == 3):
            raise DataFormatError(path, f"item {n}: expected [turns, questions, id]")
        turns, qas, dialogue_id = item
        dialogue = "\n".join(turns)
        cid = candidate_id("en", str(dialogue_id), 0)
        ids = []
        for k, qa in enumerate(qas):
            qid = f"{dialogue_id}#{k}"
            ids.append(qid)
            questions.append(
                {
                    "parallel_id": qid,
                    "lang": "en",
                    "question": _field(qa, "question", str, path, f"item {n}.questions[{k}]"),
                    "answer_sentence": dialogue,
                    "paragraph": dialogue,
                    "negatives": [],
                    "source": source,
                    "answer_candidate_id": cid,
                }
            )
        candidates.append(
            {
                "candidate_id": cid,
                "lang": "en",
                "paragraph_id": str(dialogue_id),
                "sentence_index": 0,
                "sentence": dialogue,
                "paragraph": dialogue,
                "parallel_ids": ids,
            }
        )
    return _frames(questions, candidates)


def read_table(path: str | Path, fmt: str = "auto", source: str = "") -> Tables:
    """JSON Lines or Parquet already in the canonical question columns.

    Candidates are derived: per (language, paragraph), the answer sentences and negatives given
    for it, in order of first appearance.
    """
    path = Path(path)
    frame = read_rows(path, fmt).drop(columns="_row")
    missing = [c for c in REQUIRED_USER_COLUMNS if c not in frame.columns]
    if missing:
        raise DataFormatError(path, f"missing required columns {missing}")
    return canonical_from_rows(frame, source or path.stem)


def read_utf8(path: str | Path) -> tuple[bytes, str]:
    """A text file's bytes and its UTF-8 text (a BOM dropped); ``DataFormatError`` when it cannot be read
    or is not UTF-8."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataFormatError(path, f"cannot read file: {e.strerror or e}") from None
    try:
        return raw, raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataFormatError(path, f"not UTF-8 text (byte {e.start}); save the file as UTF-8") from None


def read_rows(path: str | Path, fmt: str = "auto") -> pd.DataFrame:
    """The raw rows of a JSON Lines or Parquet file, plus ``_row``: the 1-based line (JSONL) or
    row number, so checks can point at the offending line."""
    path = Path(path)
    fmt = fmt if fmt != "auto" else ("parquet" if path.suffix in (".parquet", ".pq") else "jsonl")
    if fmt == "parquet":
        try:
            frame = pd.read_parquet(path).reset_index(drop=True)
        except Exception as e:  # pyarrow raises several unrelated types for a bad file
            raise DataFormatError(path, f"not a readable Parquet file ({e.__class__.__name__}: {e})") from None
        frame["_row"] = range(1, len(frame) + 1)
        return frame
    _, text = read_utf8(path)
    rows, numbers = [], []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataFormatError(path, f"line {n} is not valid JSON ({e.msg}, column {e.colno})") from None
        if not isinstance(row, dict):
            raise DataFormatError(path, f"line {n} should be a JSON object, got {type(row).__name__}")
        rows.append(row)
        numbers.append(n)
    if not rows:
        raise DataFormatError(path, "file is empty")
    frame = pd.DataFrame(rows)
    frame["_row"] = numbers
    return frame


def canonical_from_rows(frame: pd.DataFrame, source: str) -> Tables:
    """Complete a table of user rows into the canonical question and candidate tables."""
    questions = frame.copy()
    if "negatives" not in questions:
        questions["negatives"] = [[] for _ in range(len(questions))]
    questions["negatives"] = [list(v) if v is not None and not _isnan(v) else [] for v in questions["negatives"]]
    if "source" not in questions:
        questions["source"] = source
    for col in ("parallel_id", "lang", "source"):
        questions[col] = questions[col].astype(str)
    candidates: dict[tuple[str, str], dict[str, list[str]]] = {}
    answer_ids = []
    for row in questions.itertuples(index=False):
        key = (row.lang, row.paragraph)
        pool = candidates.setdefault(key, {})
        pool.setdefault(row.answer_sentence, []).append(row.parallel_id)
        for neg in row.negatives:
            pool.setdefault(neg, [])
    rows = []
    index_of = {}
    for (lang, paragraph), pool in candidates.items():
        pid = hashlib.sha1(paragraph.encode()).hexdigest()[:12]
        for i, (sentence, ids) in enumerate(pool.items()):
            index_of[(lang, paragraph, sentence)] = candidate_id(lang, pid, i)
            rows.append(
                {
                    "candidate_id": candidate_id(lang, pid, i),
                    "lang": lang,
                    "paragraph_id": pid,
                    "sentence_index": i,
                    "sentence": sentence,
                    "paragraph": paragraph,
                    "parallel_ids": list(dict.fromkeys(ids)),
                }
            )
    for row in questions.itertuples(index=False):
        answer_ids.append(index_of[(row.lang, row.paragraph, row.answer_sentence)])
    questions["answer_candidate_id"] = answer_ids
    return questions[list(QUESTION_COLUMNS)].reset_index(drop=True), pd.DataFrame(
        rows, columns=list(CANDIDATE_COLUMNS)
    )


def _isnan(v) -> bool:
    return isinstance(v, float) and v != v


def concat(parts: list[Tables]) -> Tables:
    """Stack several readers' outputs (e.g. one LAReQA file per language)."""
    return (
        pd.concat([q for q, _ in parts], ignore_index=True),
        pd.concat([c for _, c in parts], ignore_index=True),
    )
