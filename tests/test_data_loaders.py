"""Loaders against the published counts (docs/METHOD.md section 3, LAReQA README, DREAM paper)."""

import pytest

from xlir.data import load_dataset

XQUAD_CANDIDATES = {
    "ar": 1222, "de": 1276, "el": 1234, "en": 1180, "es": 1215, "hi": 1244,
    "ru": 1219, "th": 852, "tr": 1167, "vi": 1209, "zh": 1196,
}
MLQA_QUESTIONS = {"ar": 517, "de": 512, "en": 1148, "es": 500, "hi": 507, "vi": 511, "zh": 504}


@pytest.fixture(scope="module")
def xquad():
    return load_dataset("xquad-r")


@pytest.fixture(scope="module")
def mlqa():
    return load_dataset("mlqa-r")


def test_xquad_r_has_1190_questions_and_published_candidates_per_language(xquad):
    counts = xquad.describe().set_index("lang")
    assert counts["questions"].to_dict() == {lang: 1190 for lang in XQUAD_CANDIDATES}
    assert counts["candidates"].to_dict() == XQUAD_CANDIDATES
    assert len(xquad.candidates) == 13014


def test_xquad_r_every_question_has_one_answer_sentence_in_each_of_11_languages(xquad):
    per_id = xquad.candidates.explode("parallel_ids").dropna(subset=["parallel_ids"])
    langs_per_id = per_id.groupby("parallel_ids")["lang"].agg(list)
    assert len(langs_per_id) == 1190
    assert all(sorted(v) == sorted(XQUAD_CANDIDATES) for v in langs_per_id)


def test_mlqa_r_question_counts_and_pool_size(mlqa):
    counts = mlqa.describe().set_index("lang")
    assert counts["questions"].to_dict() == MLQA_QUESTIONS
    assert len(mlqa.candidates) == 20534
    coverage = mlqa.questions.groupby("parallel_id")["lang"].nunique()
    assert coverage.min() == 2 and coverage.max() == 4


def test_answer_sentence_is_the_candidate_holding_the_answer(xquad):
    by_id = xquad.candidates.set_index("candidate_id")
    q = xquad.questions
    assert (by_id.loc[q["answer_candidate_id"], "sentence"].to_numpy() == q["answer_sentence"].to_numpy()).all()
    for row in q.head(300).itertuples():
        assert row.parallel_id in by_id.loc[row.answer_candidate_id, "parallel_ids"]
        assert row.answer_sentence not in row.negatives
        assert row.answer_sentence in row.paragraph


def test_dream_test_has_1287_dialogues_and_2041_questions():
    dream = load_dataset("dream")
    assert len(dream.candidates) == 1287
    assert len(dream.questions) == 2041
    assert dream.candidates["parallel_ids"].map(len).sum() == 2041
    train = load_dataset("dream", split="train")
    assert (len(train.candidates), len(train.questions)) == (3869, 6116)


def test_dataset_version_is_stable_and_differs_between_subsets(xquad):
    assert load_dataset("xquad-r").version == xquad.version
    assert load_dataset("xquad-r", languages=["en", "de"]).version != xquad.version
