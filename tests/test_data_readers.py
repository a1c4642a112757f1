"""Readers for users' files: canonical columns in, clear errors out."""

import json

import pandas as pd
import pytest

from xlir.data.readers import read_lareqa, read_table
from xlir.data.schema import CANDIDATE_COLUMNS, QUESTION_COLUMNS
from xlir.errors import DataFormatError

ROWS = [
    {"parallel_id": "q1", "lang": "en", "question": "Who wrote it?", "answer_sentence": "Ann wrote it.",
     "paragraph": "Ann wrote it. Bob read it.", "negatives": ["Bob read it."]},
    {"parallel_id": "q1", "lang": "de", "question": "Wer schrieb es?", "answer_sentence": "Ann schrieb es.",
     "paragraph": "Ann schrieb es. Bob las es.", "negatives": ["Bob las es."]},
    {"parallel_id": "q2", "lang": "en", "question": "Who read it?", "answer_sentence": "Bob read it.",
     "paragraph": "Ann wrote it. Bob read it.", "negatives": ["Ann wrote it."]},
]


def _write_jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    return path


def test_jsonl_and_parquet_give_the_same_canonical_tables(tmp_path):
    q1, c1 = read_table(_write_jsonl(tmp_path / "qa.jsonl", ROWS))
    pd.DataFrame(ROWS).to_parquet(tmp_path / "qa.parquet")
    q2, c2 = read_table(tmp_path / "qa.parquet", source="qa")
    assert list(q1.columns) == list(QUESTION_COLUMNS)
    assert list(c1.columns) == list(CANDIDATE_COLUMNS)
    pd.testing.assert_frame_equal(q1, q2)
    pd.testing.assert_frame_equal(c1, c2)


def test_derived_candidates_share_a_paragraph_and_know_their_questions(tmp_path):
    questions, candidates = read_table(_write_jsonl(tmp_path / "qa.jsonl", ROWS))
    en = candidates[candidates.lang == "en"].set_index("sentence")
    assert len(en) == 2 and en["paragraph_id"].nunique() == 1
    assert en.loc["Ann wrote it.", "parallel_ids"] == ["q1"]
    assert en.loc["Bob read it.", "parallel_ids"] == ["q2"]
    by_id = candidates.set_index("candidate_id")
    assert (by_id.loc[questions.answer_candidate_id, "sentence"].to_numpy() == questions.answer_sentence.to_numpy()).all()


def _lareqa(tmp_path, doc, name="en.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc, encoding="utf-8")
    return path


GOOD = {"data": [{"title": "t", "paragraphs": [{
    "context": "One two. Three four.", "sentences": ["One two.", "Three four."],
    "sentence_breaks": [[0, 8], [9, 20]],
    "qas": [{"id": "a", "question": "What follows three?", "answers": [{"text": "four", "answer_start": 15}]}],
}]}]}


def test_lareqa_answer_sentence_comes_from_answer_start_and_sentence_breaks(tmp_path):
    questions, candidates = read_lareqa(_lareqa(tmp_path, GOOD))
    assert questions.loc[0, "answer_sentence"] == "Three four."
    assert questions.loc[0, "negatives"] == ["One two."]
    assert questions.loc[0, "lang"] == "en"
    assert candidates["parallel_ids"].tolist() == [[], ["a"]]


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "file is empty"),
        ('{"data": [', "not valid JSON"),
        ({"version": 1}, "missing field 'data'"),
        ({"data": [{"paragraphs": [{"context": "x", "sentences": ["x"], "sentence_breaks": []}]}]}, "sentence_breaks"),
        ({"data": [{"paragraphs": "nope"}]}, "should be list"),
    ],
)
def test_lareqa_reader_names_the_problem(tmp_path, content, message):
    with pytest.raises(DataFormatError, match=message):
        read_lareqa(_lareqa(tmp_path, content))


def test_answer_start_outside_paragraph_is_rejected(tmp_path):
    doc = json.loads(json.dumps(GOOD))
    doc["data"][0]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] = 99
    with pytest.raises(DataFormatError, match="outside the paragraph"):
        read_lareqa(_lareqa(tmp_path, doc))


def test_non_utf8_and_missing_columns_are_reported(tmp_path):
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes('{"question": "caf\u00e9"}'.encode("latin-1"))
    with pytest.raises(DataFormatError, match="not UTF-8"):
        read_table(bad)
    _write_jsonl(tmp_path / "few.jsonl", [{"question": "q"}])
    with pytest.raises(DataFormatError, match="missing required columns"):
        read_table(tmp_path / "few.jsonl")
