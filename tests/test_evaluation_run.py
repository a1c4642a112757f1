"""The evaluation end to end: results folder, recomputable ranks, subsets, caching."""

import json

import ir_measures
import numpy as np
import pandas as pd
import pytest

from xlir.evaluation.config import EvalConfig
from xlir.data import load_dataset
from xlir.evaluation import evaluate
from xlir.evaluation.metrics import average_precision
from xlir.evaluation.task import select_questions


@pytest.fixture(scope="module")
def bm25_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("bm25")
    cfg = EvalConfig(model="bm25", dataset="xquad-r", max_questions_per_lang=25, seed=1, output_dir=out, train_languages=["en", "de"])
    return evaluate(cfg, progress=False)


def test_results_folder_holds_every_artifact(bm25_result):
    for name, path in bm25_result.files.items():
        assert path.exists() and path.stat().st_size > 0, name
    saved = json.loads(bm25_result.files["metrics"].read_text())
    assert saved["metrics"] == pytest.approx(bm25_result.metrics)
    assert saved["info"]["questions"] == 25 * 11
    matrix = pd.read_csv(bm25_result.files["matrix"], index_col=0)
    assert matrix.shape == (11, 11)
    assert matrix.loc["en", "de"] == pytest.approx(bm25_result.metrics["xquad_r.map.en.de"], abs=1e-12)


def test_stable_metric_names(bm25_result):
    m = bm25_result.metrics
    for name in ("xquad_r.map.mo", "xquad_r.map.cr", "xquad_r.map.mul", "xquad_r.r1.mo", "xquad_r.r1.cr",
                 "xquad_r.r10.mul", "xquad_r.rank_distance", "xquad_r.rank_distance.th", "xquad_r.map.mul.zh",
                 "xquad_r.map.mo.seen", "xquad_r.map.mo.unseen", "xquad_r.map.cr.seen", "xquad_r.map.mul.unseen"):
        assert name in m and np.isfinite(m[name]), name
    langs = bm25_result.info["languages"]
    assert all(f"xquad_r.map.{x}.{y}" in m for x in langs for y in langs)


def test_every_ap_and_rank_distance_recomputes_from_the_ranks_file(bm25_result):
    ranks = pd.read_csv(bm25_result.files["ranks"], sep="\t")
    per_query = pd.read_csv(bm25_result.files["per_query"])
    mul = per_query[per_query["pool"] == "mul"].set_index("query_id")
    for qid, group in list(ranks.groupby("query_id"))[:60]:
        assert mul.loc[qid, "ap"] == pytest.approx(average_precision(group["rank_mul"]), abs=1e-6)
        assert mul.loc[qid, "rank_distance"] == group["rank_mul"].max() - group["rank_mul"].min()
        for lang, sub in group.groupby("candidate_lang"):
            row = per_query[(per_query.query_id == qid) & (per_query.pool == lang)]
            assert row["ap"].item() == pytest.approx(average_precision(sub["rank_single"]), abs=1e-6)


def test_trec_run_and_qrels_agree_with_the_ranks_through_trec_eval(bm25_result):
    qrels = list(ir_measures.read_trec_qrels(str(bm25_result.files["qrels"])))
    run = list(ir_measures.read_trec_run(str(bm25_result.files["run"])))
    top1 = {m.query_id: m.value for m in ir_measures.iter_calc([ir_measures.P @ 1], qrels, run)}
    ranks = pd.read_csv(bm25_result.files["ranks"], sep="\t")
    best = ranks.groupby("query_id")["rank_mul"].min()
    for qid, p1 in top1.items():
        assert p1 == (1.0 if best[qid] == 1 else 0.0)


def test_question_subset_is_seeded_and_parallel_across_languages():
    q = load_dataset("xquad-r").questions
    a = select_questions(q, 30, seed=7)
    ids = a.groupby("lang")["parallel_id"].apply(frozenset)
    assert len(set(ids)) == 1 and len(next(iter(ids))) == 30
    assert a.equals(select_questions(q, 30, seed=7))
    assert set(select_questions(q, 30, seed=8)["parallel_id"]) != set(a["parallel_id"])


def test_dream_reports_mrr_and_recall():
    result = evaluate(EvalConfig(model="bm25", dataset="dream", max_questions_per_lang=200), progress=False)
    m = result.metrics
    assert m["dream.mrr"] == m["dream.map"]
    assert 0 < m["dream.r1"] <= m["dream.r10"] <= 1
    assert m["dream.r1"] <= m["dream.mrr"]


def test_bad_config_is_rejected():
    with pytest.raises(ValueError):
        EvalConfig(max_questions_per_lang=0)
    with pytest.raises(ValueError):
        EvalConfig(candidate_text="paragraph")
