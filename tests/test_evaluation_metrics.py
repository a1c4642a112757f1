"""Metric core: exact against trec_eval (through ir_measures), hand-made cases, chunking."""

import ir_measures
import numpy as np
import pytest
from ir_measures import AP, R

from xlir.evaluation.metrics import average_precision, per_query_table, summarize
from xlir.evaluation.ranking import rank_relevant


def _random_task(seed=0, n_queries=60, langs=3, per_lang=120):
    rng = np.random.default_rng(seed)
    n = langs * per_lang
    scores = rng.standard_normal((n_queries, n)).astype(np.float32)
    cand_lang = np.repeat(np.arange(langs), per_lang)
    relevant = [np.sort(rng.choice(n, size=rng.integers(1, 6), replace=False)) for _ in range(n_queries)]
    lang_starts = np.arange(langs) * per_lang
    return scores, cand_lang, relevant, lang_starts


def _ranks(scores, relevant, lang_starts, chunk_size=7):
    return rank_relevant(lambda a, b: scores[a:b], relevant, lang_starts, scores.shape[1], chunk_size=chunk_size)


def test_ap_and_recall_equal_trec_eval_on_random_rankings():
    scores, cand_lang, relevant, lang_starts = _random_task()
    res = _ranks(scores, relevant, lang_starts)
    r = res.relevant
    query_lang = np.zeros(len(relevant), dtype=int)
    table = per_query_table(r.query, r.candidate, r.rank_single, r.rank_mul, query_lang, cand_lang)
    mul = table[table.pool == "mul"].set_index("query")
    qrels = [ir_measures.Qrel(str(q), str(c), 1) for q, rel in enumerate(relevant) for c in rel]
    run = [ir_measures.ScoredDoc(str(q), str(c), float(s)) for q in range(len(relevant)) for c, s in enumerate(scores[q])]
    ref = {(m.query_id, str(m.measure)): m.value for m in ir_measures.iter_calc([AP, R @ 10, R @ 1], qrels, run)}
    for q in range(len(relevant)):
        assert mul.loc[q, "ap"] == pytest.approx(ref[(str(q), "AP")], abs=1e-9)
        assert mul.loc[q, "r10"] == pytest.approx(ref[(str(q), "R@10")], abs=1e-9)
    # single-language pools: trec_eval on the run restricted to that language's candidates
    for lang in range(3):
        cols = np.nonzero(cand_lang == lang)[0]
        sub_qrels = [x for x in qrels if cand_lang[int(x.doc_id)] == lang]
        sub_run = [x for x in run if cand_lang[int(x.doc_id)] == lang]
        sub_ref = {(m.query_id, str(m.measure)): m.value for m in ir_measures.iter_calc([AP, R @ 1], sub_qrels, sub_run)}
        ours = table[table.pool == lang].set_index("query")
        assert set(ours.index) == {int(q) for q, _ in sub_ref}
        for q in ours.index:
            assert ours.loc[q, "ap"] == pytest.approx(sub_ref[(str(q), "AP")], abs=1e-9)
            assert ours.loc[q, "r1"] == pytest.approx(sub_ref[(str(q), "R@1")], abs=1e-9)
        assert len(cols) == 120


def test_results_do_not_depend_on_chunk_size():
    scores, _, relevant, lang_starts = _random_task(seed=3)
    a, b = _ranks(scores, relevant, lang_starts, 1), _ranks(scores, relevant, lang_starts, 1000)
    for field in ("query", "candidate", "rank_single", "rank_mul"):
        np.testing.assert_array_equal(getattr(a.relevant, field), getattr(b.relevant, field))
    np.testing.assert_array_equal(a.top_index, b.top_index)


def test_ties_are_broken_by_pool_position_in_ranks_and_run():
    scores = np.array([[0.5, 0.9, 0.9, 0.1]], dtype=np.float32)
    res = rank_relevant(lambda a, b: scores[a:b], [np.array([1, 2])], np.array([0]), 4, top_k=4)
    assert res.relevant.rank_mul.tolist() == [1, 2]
    assert res.top_index[0].tolist() == [1, 2, 0, 3]


def test_average_precision_by_hand():
    assert average_precision([1]) == 1.0
    assert average_precision([2]) == 0.5
    assert average_precision([1, 3]) == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert average_precision([3, 1]) == pytest.approx((1 / 1 + 2 / 3) / 2)


def test_rank_distance_is_max_minus_min_multilingual_rank():
    # one query; relevant scores 8, 6, 2 rank 2, 4, 8 -> distance 6
    scores = np.array([[9, 8, 1, 7, 6, 5, 4, 3, 2]], dtype=np.float32)
    relevant = [np.array([1, 8, 4])]
    res = rank_relevant(lambda a, b: scores[a:b], relevant, np.array([0, 3, 6]), 9)
    assert sorted(res.relevant.rank_mul.tolist()) == [2, 4, 8]
    r = res.relevant
    table = per_query_table(r.query, r.candidate, r.rank_single, r.rank_mul, np.array([0]), np.array([0, 0, 0, 1, 1, 1, 2, 2, 2]))
    assert table[table.pool == "mul"]["rank_distance"].item() == 6


def test_mo_cr_mul_averaging_on_a_tiny_dataset_with_known_answers():
    # Two languages (a, b), two parallel questions per language. Pool: a0 a1 b0 b1, where
    # aK/bK answer question K. Scores are chosen so every rank is known in advance.
    langs = np.array(["a", "b"])
    cand_lang = np.array([0, 0, 1, 1])
    query_lang = np.array([0, 0, 1, 1])  # queries a0 a1 b0 b1
    relevant = [np.array([0, 2]), np.array([1, 3]), np.array([0, 2]), np.array([1, 3])]
    scores = np.array(
        [
            [0.9, 0.1, 0.8, 0.7],  # a0: a-pool rank 1; b-pool rank 1; mul ranks 1, 2
            [0.9, 0.8, 0.1, 0.7],  # a1: a-pool rank 2; b-pool rank 1; mul ranks 2, 3
            [0.1, 0.2, 0.9, 0.3],  # b0: a-pool rank 2; b-pool rank 1; mul ranks 4, 1
            [0.1, 0.2, 0.3, 0.9],  # b1: a-pool rank 1; b-pool rank 1; mul ranks 3, 1
        ],
        dtype=np.float32,
    )
    res = rank_relevant(lambda a, b: scores[a:b], relevant, np.array([0, 2]), 4)
    r = res.relevant
    table = per_query_table(r.query, r.candidate, r.rank_single, r.rank_mul, langs[query_lang], langs[cand_lang])
    metrics, matrix = summarize(table, "t", ["a", "b"], train_languages=["a"])
    assert matrix.loc["a", "a"] == pytest.approx((1 + 1 / 2) / 2)
    assert matrix.loc["a", "b"] == pytest.approx(1.0)
    assert matrix.loc["b", "a"] == pytest.approx((1 / 2 + 1) / 2)
    assert matrix.loc["b", "b"] == pytest.approx(1.0)
    assert metrics["t.map.mo"] == pytest.approx((0.75 + 1.0) / 2)
    assert metrics["t.map.cr"] == pytest.approx((1.0 + 0.75) / 2)
    ap_mul = {"a0": 1.0, "a1": (1 / 2 + 2 / 3) / 2, "b0": (1 + 2 / 4) / 2, "b1": (1 + 2 / 3) / 2}
    assert metrics["t.map.mul.a"] == pytest.approx((ap_mul["a0"] + ap_mul["a1"]) / 2)
    assert metrics["t.map.mul"] == pytest.approx(np.mean(list(ap_mul.values())))
    assert metrics["t.rank_distance.a"] == pytest.approx((1 + 1) / 2)
    assert metrics["t.rank_distance.b"] == pytest.approx((3 + 2) / 2)
    assert metrics["t.rank_distance"] == pytest.approx((1 + 2.5) / 2)
    assert metrics["t.r1.mo"] == pytest.approx((0.5 + 1.0) / 2)
    assert metrics["t.map.mo.seen"] == pytest.approx(0.75)
    assert metrics["t.map.mo.unseen"] == pytest.approx(1.0)
    assert "t.map.cr.seen" not in metrics  # no pair with both languages seen and X != Y
    assert metrics["t.map.cr.unseen"] == pytest.approx(0.875)
