"""Mono / cross / hybrid batch samplers: purity, alpha, unique ids, determinism, reachability."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xlir.errors import XlirError
from xlir.training.data import build_triplets
from xlir.training.samplers import HybridBatchSampler

LANGS = ["ar", "de", "en", "hi"]


def questions(coverage: dict[str, list[str]], source: str = "s") -> pd.DataFrame:
    """One row per (parallel id, language); each paragraph has the answer and two other sentences."""
    rows = []
    for pid, langs in coverage.items():
        for lang in langs:
            rows.append(
                {
                    "parallel_id": pid,
                    "lang": lang,
                    "question": f"{source} q {pid} {lang}",
                    "answer_sentence": f"{source} a {pid} {lang}",
                    "paragraph": f"{source} p {pid} {lang}",
                    "negatives": [f"{source} n1 {pid} {lang}", f"{source} n2 {pid} {lang}"],
                    "source": source,
                    "answer_candidate_id": f"{lang}:{pid}:0",
                }
            )
    return pd.DataFrame(rows)


def sampler(table, strategy="hybrid", alpha=0.5, batch_size=4, seed=0, **kw):
    return HybridBatchSampler(None, batch_size, table=table, strategy=strategy, alpha=alpha, seed=seed, **kw)


# MLQA-R-like uneven coverage: ids in 1 to 4 languages, some pairs rare
UNEVEN = {
    "p0": ["en", "de", "ar", "hi"],
    "p1": ["en", "de"],
    "p2": ["en", "ar", "hi"],
    "p3": ["en"],
    "p4": ["de", "hi"],
    "p5": ["en", "de", "ar"],
    "p6": ["ar", "en"],
}

coverages = st.dictionaries(
    keys=st.sampled_from([f"p{i}" for i in range(12)]),
    values=st.lists(st.sampled_from(LANGS), min_size=1, max_size=4, unique=True),
    min_size=1,
    max_size=12,
)


def check_batch(table, batch, batch_size):
    rows = batch.rows
    assert 1 <= len(rows) <= batch_size
    assert len({int(table.pid[r]) for r in rows}) == len(rows), "a parallel id twice in one batch"
    assert {int(table.source[r]) for r in rows} == {batch.source}, "a batch mixes sources"
    assert len({int(table.pos[r]) for r in rows}) == len(rows), "a positive passage twice in one batch"
    lq, lp = table.lq[rows], table.lp[rows]
    if batch.kind == "mono":
        assert (lq == lp).all() and len(set(lq.tolist())) == 1, "mono batch not in one language"
    else:
        assert (lq != lp).all(), "cross batch pairs a language with itself"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    coverage=coverages,
    strategy=st.sampled_from(["mono", "cross", "hybrid"]),
    alpha=st.floats(0, 1),
    batch_size=st.integers(1, 9),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_batch_is_pure_one_source_and_has_unique_parallel_ids(coverage, strategy, alpha, batch_size, seed):
    table = build_triplets([("s", questions(coverage))], seed=0)
    if strategy == "cross" and not any(len(v) > 1 for v in coverage.values()):
        with pytest.raises(XlirError, match="cross batches need"):
            sampler(table, strategy)
        return
    s = sampler(table, strategy, alpha, batch_size, seed)
    for b in range(25):
        batch = s.plan(b)
        check_batch(table, batch, batch_size)
        if strategy != "hybrid":
            assert batch.kind == strategy


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), epoch=st.integers(0, 5))
def test_same_seed_same_batches_and_any_batch_computable_alone(seed, epoch):
    table = build_triplets([("s", questions(UNEVEN))], seed=0)
    a, b = sampler(table, seed=seed), sampler(table, seed=seed)
    a.set_epoch(epoch)
    b.set_epoch(epoch)
    assert list(a) == list(b)
    streamed = list(a)
    for i in (len(streamed) - 1, 0):  # random access, out of order, as a resumed run skips ahead
        assert b.plan(i).rows == streamed[i]


def test_other_seed_or_epoch_gives_other_batches():
    table = build_triplets([("s", questions(UNEVEN))], seed=0)
    s = sampler(table, num_batches=20)
    first = list(s)
    s.set_epoch(1)
    assert list(s) != first
    assert list(sampler(table, seed=1, num_batches=20)) != first


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 0.8, 1.0])
def test_share_of_mono_batches_is_close_to_alpha(alpha):
    table = build_triplets([("s", questions(UNEVEN))], seed=0)
    n = 3000
    s = sampler(table, alpha=alpha, batch_size=2, seed=7)
    share = np.mean([s.plan(b).kind == "mono" for b in range(n)])
    sigma = (alpha * (1 - alpha) / n) ** 0.5
    assert abs(share - alpha) <= 5 * sigma + 1e-9


@pytest.mark.parametrize("strategy", ["mono", "cross", "hybrid"])
def test_every_allowed_combination_is_reachable(strategy):
    table = build_triplets([("s", questions(UNEVEN))], seed=0)
    frame = table.frame()
    allowed = {
        (r.parallel_id, r.lang_q, r.lang_p)
        for r in frame.itertuples()
        if strategy == "hybrid" or (r.lang_q == r.lang_p) == (strategy == "mono")
    }
    s = sampler(table, strategy, batch_size=3, seed=3)
    seen = set()
    for b in range(3000):
        for r in s.plan(b).rows:
            seen.add((frame.parallel_id[r], frame.lang_q[r], frame.lang_p[r]))
    assert seen == allowed


def test_mono_language_is_drawn_uniformly_not_by_size():
    coverage = {f"p{i}": ["en"] for i in range(40)} | {f"q{i}": ["de"] for i in range(4)}
    table = build_triplets([("s", questions(coverage))], seed=0)
    s = sampler(table, "mono", batch_size=4)
    langs = [table.languages[table.lq[s.plan(b).rows[0]]] for b in range(2000)]
    assert abs(langs.count("de") / len(langs) - 0.5) < 0.05


def test_too_few_ids_make_a_short_batch_not_a_hang():
    table = build_triplets([("s", questions({"p0": ["en", "de"], "p1": ["en"], "p2": ["de", "hi"]}))], seed=0)
    for strategy in ("mono", "cross", "hybrid"):
        s = sampler(table, strategy, batch_size=64)
        for b in range(50):
            batch = s.plan(b)
            check_batch(table, batch, 64)
    assert max(len(sampler(table, "cross", batch_size=64).plan(b).rows) for b in range(50)) == 2


def test_sources_are_drawn_in_proportion_to_their_size():
    big = questions({f"p{i}": ["en", "de"] for i in range(30)}, source="big")  # 60 questions
    small = questions({f"p{i}": ["en", "de"] for i in range(10)}, source="small")  # 20 questions
    table = build_triplets([("big", big), ("small", small)], seed=0)
    assert table.source_sizes == [60, 20]
    s = sampler(table, batch_size=4)
    picks = [s.plan(b).source for b in range(4000)]
    assert abs(picks.count(0) / len(picks) - 0.75) < 0.03


def test_one_language_source_makes_only_mono_batches_in_hybrid():
    para = questions({f"p{i}": ["en", "de"] for i in range(10)}, source="para")
    dream = questions({f"d{i}": ["en"] for i in range(10)}, source="dream")
    table = build_triplets([("para", para), ("dream", dream)], seed=0)
    s = sampler(table, "hybrid", alpha=0.0, batch_size=3)
    plans = [s.plan(b) for b in range(300)]
    assert all(p.kind == "mono" for p in plans if p.source == 1)
    assert all(p.kind == "cross" for p in plans if p.source == 0)
    cross = sampler(table, "cross", batch_size=3)
    assert cross.skipped_sources == ["dream"]
    assert all(cross.plan(b).source == 0 for b in range(100))


def test_cross_strategy_without_any_parallel_ids_is_a_clear_error():
    table = build_triplets([("dream", questions({f"d{i}": ["en"] for i in range(5)}))], seed=0)
    with pytest.raises(XlirError, match="use strategy mono or hybrid"):
        sampler(table, "cross")


def test_an_epoch_has_as_many_batches_as_the_questions_fill():
    table = build_triplets([("s", questions(UNEVEN))], seed=0)  # 19 questions
    assert len(sampler(table, batch_size=4)) == 5
    assert len(list(sampler(table, batch_size=4))) == 5


def test_the_factory_finds_each_table_by_content_so_copies_and_wrappers_work():
    import pickle

    from datasets import Dataset

    from xlir.training.samplers import BatchSamplerFactory

    train = build_triplets([("s", questions(UNEVEN))], seed=0)
    val = build_triplets([("s", questions({"v1": ["en", "de"], "v2": ["ar", "en"]}, source="v"))], seed=0)
    factory = BatchSamplerFactory({"train": (train, {}), "validation": (val, {"seed": 7})}, strategy="hybrid", alpha=0.5)
    copied = Dataset.from_dict(train.to_dataset().to_dict())  # another object, same content
    wrapped = val.to_dataset(pivot=True).select(range(len(val)))  # a selection with extra columns
    assert factory(copied, 4).table is train and factory(wrapped, 4).seed == 7
    assert set(factory.built) == {"train", "validation"}
    reordered = Dataset.from_dict({c: list(reversed(v)) for c, v in train.to_dataset().to_dict().items()})
    with pytest.raises(XlirError, match="matches none of its triplet tables"):
        factory(reordered, 4)
    assert pickle.loads(pickle.dumps(factory)).tables == {}  # saved with checkpoints, without the tables
