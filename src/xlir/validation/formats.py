"""What a LAReQA/SQuAD-style file states besides the rows the reader takes from it.

The reader (``xlir.data.readers.read_lareqa``) uses a few fields of the format: each
paragraph's ``context``, ``sentences`` and the start of each ``sentence_breaks`` item, each
question's ``id``, ``question`` and its first answer's ``answer_start``. The format annotates
several things twice, and corrupt data shows as a disagreement between the two, whichever one
the reader trusts:

- ``sentence_breaks`` and ``sentences``: each break ``[start, end]`` spans its sentence in the
  context (``context[start:end] == sentences[i]``), in order, without overlap;
- ``answers[].text`` and ``answers[].answer_start``: the text is in the context, and starts at
  ``answer_start``;
- ``answer_start`` and the sentences: the answer starts inside a sentence (the answer sentence
  is the one whose span holds it), not between two;
- the file's language: its ``language`` field, its name (``de.json``) and ``--lang``.

Text the rows do not carry (article ``title``, the ``context`` and ``sentences`` of every
paragraph, also those without questions) must be well-formed (``xlir.validation.text``).

``lareqa_annotations`` returns one row per checked item (``item``: file, article, paragraph,
answer; ``where``: its JSON path), with an ``<check>_ok`` column (True, False, or None where
the check does not apply to the item) and an ``<check>_problem`` column saying what is wrong.
"""

from __future__ import annotations

import bisect
from pathlib import Path

import pandas as pd

from xlir.validation.languages import language_from_name
from xlir.validation.text import first_problem, problem

CHECKS = ("language", "title_chars", "context_chars", "sentence_breaks", "answer_text", "answer_start", "answer_in_sentence")


def _short(text, limit: int = 60) -> str:
    text = str(text)
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _row(item: str, where: str, **values) -> dict:
    row = {"item": item, "where": where, "id": None}
    for check in CHECKS:
        row[f"{check}_ok"] = None
        row[f"{check}_problem"] = None
    for key, value in values.items():
        if key in CHECKS:
            row[f"{key}_ok"] = value is None
            row[f"{key}_problem"] = value
        else:
            row[key] = value
    return row


def language_problem(doc, path: Path, lang_option: str | None) -> str | None:
    """Where the file's ``language`` field, its name and ``--lang`` disagree, what each says."""
    stated = []
    field = doc.get("language") if isinstance(doc, dict) else None
    if isinstance(doc, dict) and "language" in doc:
        if not isinstance(field, str) or not field.strip():
            return f"the 'language' field should be a language code, got {field!r}"
        stated.append(("the 'language' field", field))
    named = language_from_name(path.stem)
    if named:
        stated.append((f"the file name ({path.name})", named))
    if lang_option:
        stated.append(("--lang", lang_option))
    if len({code for _, code in stated}) > 1:
        return "; ".join(f"{who} says {code!r}" for who, code in stated)
    return None


def sentence_breaks_problem(context: str, sentences: list, breaks: list) -> str | None:
    end_before = 0
    for i, (brk, sentence) in enumerate(zip(breaks, sentences)):
        if not (isinstance(brk, (list, tuple)) and len(brk) == 2 and all(_is_int(v) for v in brk)):
            return f"sentence_breaks[{i}] should be [start, end] integers, got {brk!r}"
        start, end = brk
        if not 0 <= start < end <= len(context):
            return f"sentence_breaks[{i}] {brk} lies outside the {len(context)}-character context"
        if start < end_before:
            return f"sentence_breaks[{i}] {brk} starts before the previous sentence ends ({end_before})"
        end_before = end
        if context[start:end] != sentence:
            return (f"sentences[{i}] differs from context[{start}:{end}]: {_short(sentence)} "
                    f"vs {_short(context[start:end])}")
    return None


def lareqa_annotations(doc, path: str | Path, lang_option: str | None = None) -> pd.DataFrame:
    """One row per checked item of a LAReQA file the reader has read (so its skeleton is sound)."""
    path = Path(path)
    rows = [_row("file", path.name, language=language_problem(doc, path, lang_option))]
    for a, article in enumerate(doc["data"]):
        if "title" in article:
            title = article["title"]
            rows.append(_row("article", f"data[{a}]", title_chars=(
                f"title should be text, got {type(title).__name__}" if not isinstance(title, str) else problem(title))))
        for p, para in enumerate(article["paragraphs"]):
            where = f"data[{a}].paragraphs[{p}]"
            context, sentences, breaks = para["context"], para["sentences"], para["sentence_breaks"]
            bad_text = problem(context)
            bad_text = f"context: {bad_text}" if bad_text else None
            if not bad_text:
                found = first_problem([s for s in sentences if isinstance(s, str)])
                bad_text = f"sentences: {found}" if found else None
            breaks_problem = sentence_breaks_problem(context, sentences, breaks)
            rows.append(_row("paragraph", where, context_chars=bad_text, sentence_breaks=breaks_problem))
            spans = None if breaks_problem else [tuple(b) for b in breaks]
            starts = [s for s, _ in spans] if spans else []
            for k, qa in enumerate(para["qas"]):
                for j, answer in enumerate(qa["answers"]):
                    rows.append(_answer_row(f"{where}.qas[{k}].answers[{j}]", qa["id"], answer, context, spans, starts))
    return pd.DataFrame(rows)


def _answer_row(where: str, qid, answer: dict, context: str, spans, starts) -> dict:
    text, start = answer.get("text"), answer.get("answer_start")
    values: dict = {"id": str(qid)}
    if "text" not in answer:
        values["answer_text"] = "the answer has no 'text'"
    elif not isinstance(text, str) or not text.strip():
        values["answer_text"] = f"the answer's text should be non-empty text, got {text!r}"
    elif text not in context:
        values["answer_text"] = f"the answer's text {_short(text)} does not occur in the context"
    else:
        values["answer_text"] = None
        if not _is_int(start):
            values["answer_start"] = f"answer_start should be an integer, got {start!r}"
        elif context[start: start + len(text)] != text:
            values["answer_start"] = (
                f"answer_start {start}, but the text starts at {context.find(text)}: "
                f"{_short(text)} vs context[{start}:{start + len(text)}] {_short(context[start: start + len(text)])}"
            )
        else:
            values["answer_start"] = None
            if spans:
                i = bisect.bisect_right(starts, start) - 1
                inside = i >= 0 and start < spans[i][1]
                values["answer_in_sentence"] = None if inside else (
                    f"answer_start {start} lies between sentences (sentence_breaks {spans[max(i, 0)]}"
                    f"{f' and {list(spans[i + 1])}' if 0 <= i < len(spans) - 1 else ''}), in no sentence"
                )
    return _row("answer", where, **values)


__all__ = ["CHECKS", "language_problem", "lareqa_annotations", "sentence_breaks_problem"]
