"""Training data: triplets with same-paragraph negatives, the split by parallel id, several sources."""

import json

import pandas as pd
import pytest

from xlir.errors import XlirError
from xlir.training.data import (
    TEXT_COLUMNS,
    build_triplets,
    load_source,
    prepare_training_data,
    split_by_parallel_id,
)


def row(pid, lang, paragraph, answer, negatives=(), question=None):
    return {
        "parallel_id": pid,
        "lang": lang,
        "question": question or f"q {pid} {lang}",
        "answer_sentence": answer,
        "paragraph": paragraph,
        "negatives": list(negatives),
        "source": "t",
        "answer_candidate_id": "",
    }


def table():
    return pd.DataFrame(
        [
            row("a", "en", "P1 en", "a-en", ["s1-en", "s2-en", "s3-en"]),
            row("a", "de", "P1 de", "a-de", ["s1-de", "s2-de"]),
            row("b", "en", "P2 en", "b-en", []),  # one-sentence paragraph: fallback
            row("b", "de", "P2 de", "b-de", ["x-de"]),
            row("c", "en", "P3 en", "c-en", ["c-en"]),  # the only "other" sentence is the answer itself
        ]
    )


def test_triplets_pair_each_question_with_its_answer_in_every_language_of_its_id():
    t = build_triplets([("t", table())], seed=0).frame()
    assert len(t) == 2 * 2 + 2 * 2 + 1  # k*k per parallel id
    combos = set(zip(t.parallel_id, t.lang_q, t.lang_p))
    assert ("a", "en", "de") in combos and ("a", "de", "en") in combos and ("c", "en", "en") in combos
    for r in t.itertuples():
        assert r.anchor == f"q {r.parallel_id} {r.lang_q}"
        assert r.positive == f"{r.parallel_id}-{r.lang_p}"


def test_negative_is_another_sentence_of_the_same_paragraph_in_the_passage_language():
    q = table()
    t = build_triplets([("t", q)], seed=0).frame()
    own = {(r.parallel_id, r.lang): set(r.negatives) for r in q.itertuples()}
    for r in t[t.parallel_id.isin(["a"]) | ((t.parallel_id == "b") & (t.lang_p == "de"))].itertuples():
        assert r.negative in own[(r.parallel_id, r.lang_p)]
        assert r.negative != r.positive


def test_one_sentence_paragraph_falls_back_to_another_paragraph_in_the_same_language():
    q = table()
    t = build_triplets([("t", q)], seed=0).frame()
    en_sentences_elsewhere = {"a-en", "s1-en", "s2-en", "s3-en", "c-en"}
    for pid in ("b", "c"):
        negs = set(t[(t.parallel_id == pid) & (t.lang_p == "en")].negative)
        assert len(negs) == 1
        neg = negs.pop()
        assert neg in en_sentences_elsewhere and neg != f"{pid}-en"


def test_negatives_depend_on_the_seed_only_not_on_row_order():
    q = table()
    a = build_triplets([("t", q)], seed=0).frame()
    b = build_triplets([("t", q.sample(frac=1, random_state=3))], seed=0).frame()
    key = ["parallel_id", "lang_q", "lang_p"]
    pd.testing.assert_frame_equal(a.sort_values(key).reset_index(drop=True), b.sort_values(key).reset_index(drop=True))
    many = pd.DataFrame([row(f"p{i}", "en", f"P{i}", f"ans{i}", [f"n{i}-{j}" for j in range(6)]) for i in range(20)])
    negs = {s: list(build_triplets([("t", many)], seed=s).negative) for s in (0, 1)}
    assert negs[0] != negs[1]
    assert negs[0] == list(build_triplets([("t", many)], seed=0).negative)


def test_a_language_with_a_single_sentence_has_no_negative_and_says_so():
    q = pd.DataFrame([row("a", "en", "P1", "only"), row("a", "sw", "P1 sw", "pekee")])
    with pytest.raises(XlirError, match="language 'en'.*no sentence outside the paragraph"):
        build_triplets([("t", q)], seed=0)


def test_dataset_holds_only_the_text_columns():
    ds = build_triplets([("t", table())], seed=0).to_dataset()
    assert tuple(ds.column_names) == TEXT_COLUMNS


def paragraph_pool(n_pids=60, per_paragraph=2, langs=("en", "de", "es")):
    rows = []
    for i in range(n_pids):
        for lang in langs[: 1 + i % len(langs)]:
            par = f"P{i // per_paragraph} {lang}"
            rows.append(row(f"id{i}", lang, par, f"ans {i} {lang}", [f"other {i} {lang}"]))
    return pd.DataFrame(rows)


def test_validation_split_is_by_parallel_id_and_keeps_paragraph_mates_together():
    q = paragraph_pool()
    train, val = split_by_parallel_id(q, 0.2, seed=0, source="t")
    assert len(train) + len(val) == len(q)
    assert set(train.parallel_id).isdisjoint(val.parallel_id)
    assert set(train.paragraph).isdisjoint(val.paragraph)
    assert abs(val.parallel_id.nunique() - 12) <= 2
    again, _ = split_by_parallel_id(q.sample(frac=1, random_state=1), 0.2, seed=0, source="t")
    assert set(again.parallel_id) == set(train.parallel_id)
    other, _ = split_by_parallel_id(q, 0.2, seed=1, source="t")
    assert set(other.parallel_id) != set(train.parallel_id)


def test_validation_split_holds_out_at_least_one_id_and_keeps_one_for_training():
    q = paragraph_pool(n_pids=4, per_paragraph=1)
    train, val = split_by_parallel_id(q, 0.01, seed=0)
    assert val.parallel_id.nunique() == 1 and train.parallel_id.nunique() == 3
    train, val = split_by_parallel_id(q, 0.5, seed=0)
    assert train.parallel_id.nunique() >= 1
    train, val = split_by_parallel_id(q, 0.0, seed=0)
    assert val.empty and len(train) == len(q)


def write_jsonl(path, frame):
    path.write_text("".join(json.dumps(r) + "\n" for r in frame.drop(columns=["source", "answer_candidate_id"]).to_dict("records")))
    return str(path)


def test_prepare_training_data_from_two_user_files(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", paragraph_pool(40))
    b = write_jsonl(tmp_path / "b.jsonl", paragraph_pool(10, langs=("en",)))
    data = prepare_training_data([a, b], seed=0, validation_fraction=0.1)
    assert data.train.sources == [a, b]
    assert set(data.versions) == {a, b} and all(len(v) == 16 for v in data.versions.values())
    assert data.train.source_sizes == [data.counts[a]["train_questions"], data.counts[b]["train_questions"]]
    train_ids = set(data.train.parallel_ids)
    assert train_ids.isdisjoint(data.validation.parallel_ids)
    assert data.counts[b]["validation_parallel_ids"] >= 1
    only_en = prepare_training_data([a], languages=["en"], validation_fraction=0)
    assert only_en.train.languages == ["en"] and only_en.validation is None


def test_unknown_source_and_missing_file_are_clear_errors(tmp_path):
    with pytest.raises(XlirError, match="unknown dataset"):
        load_source("mlqa")
    with pytest.raises(XlirError, match="does not exist"):
        load_source(str(tmp_path / "nope.jsonl"))
    with pytest.raises(XlirError, match="no questions in languages"):
        load_source(write_jsonl(tmp_path / "a.jsonl", paragraph_pool(4)), languages=["fr"])


def test_mlqa_r_triplets_hold_out_whole_parallel_ids():
    data = prepare_training_data(["mlqa-r"], seed=0, validation_fraction=0.05)
    train = data.train.frame()
    val = data.validation.frame()
    assert set(train.parallel_id).isdisjoint(val.parallel_id)
    assert 40 <= val.parallel_id.nunique() <= 80
    k = train.groupby("parallel_id").lang_q.nunique()
    assert len(train) == int((k**2).sum())
    assert sorted(data.train.languages) == ["ar", "de", "en", "es", "hi", "vi", "zh"]
    assert (train.negative != train.positive).all()
