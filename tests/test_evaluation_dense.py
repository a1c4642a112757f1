"""Dense evaluation with the tiny encoder: caching, chunked scoring, prompts."""

import numpy as np
import pytest

from xlir.evaluation.config import EvalConfig
from xlir.evaluation import evaluate
from xlir.evaluation import encode as encode_mod
from xlir.evaluation import ranking


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XLIR_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_second_evaluation_of_the_same_model_does_not_reencode(cache, monkeypatch, tmp_path):
    cfg = EvalConfig(model="tiny", dataset="xquad-r", max_questions_per_lang=5, output_dir=tmp_path / "a", max_seq_length=32)
    first = evaluate(cfg, progress=False)
    assert not first.info["embeddings_cached"]
    calls = []
    original = encode_mod.encode_cached

    def spy(model, *a, **k):
        out = original(model, *a, **k)
        calls.append(out.cached)
        return out

    monkeypatch.setattr("xlir.evaluation.encode.encode_cached", spy)
    second = evaluate(cfg.model_copy(update={"output_dir": tmp_path / "b"}), progress=False)
    assert calls == [True, True]
    assert second.info["embeddings_cached"]
    assert second.metrics == first.metrics


def test_scores_are_computed_in_bounded_chunks(cache, monkeypatch, tmp_path):
    seen = []
    original = ranking.rank_relevant

    def spy(score_block, *a, **k):
        def block(start, stop):
            out = score_block(start, stop)
            seen.append(out.shape)
            return out

        return original(block, *a, **{**k, "chunk_size": 16})

    monkeypatch.setattr("xlir.evaluation.run.rank_relevant", spy)
    result = evaluate(EvalConfig(model="tiny", dataset="mlqa-r", max_questions_per_lang=8, output_dir=tmp_path, max_seq_length=32), progress=False)
    assert max(rows for rows, _ in seen) == 16
    assert all(cols == 20534 for _, cols in seen)
    assert sum(rows for rows, _ in seen) == result.info["questions"]


def test_random_encoder_scores_far_below_a_real_signal(cache, tmp_path):
    """The tiny random model must not look good: a guard against leaking answers into scores."""
    m = evaluate(EvalConfig(model="tiny", dataset="xquad-r", max_questions_per_lang=10, output_dir=tmp_path, max_seq_length=32), progress=False).metrics
    assert m["xquad_r.map.mul"] < 0.05
    assert np.isfinite(m["xquad_r.rank_distance"])


def test_a_torn_cache_entry_is_computed_again_not_an_error(cache, tmp_path):
    from xlir.evaluation.encode import cache_key, encode_cached

    class Model:
        calls = 0

        def encode(self, texts, **kw):
            Model.calls += 1
            return np.ones((len(texts), 3), dtype=np.float32)

    texts = ["a", "b", "c"]
    first = encode_cached(Model(), "fp", texts, "query", batch_size=2, max_seq_length=16, show_progress=False)
    path = cache / "embeddings" / f"{cache_key('fp', texts, 'query', 16)}.npy"
    assert not first.cached and path.exists() and not list(path.parent.glob("*.tmp"))
    path.with_suffix(".json").write_text('{"seconds": 1.')  # killed while the metadata was written
    again = encode_cached(Model(), "fp", texts, "query", batch_size=2, max_seq_length=16, show_progress=False)
    assert not again.cached and Model.calls == 2
    third = encode_cached(Model(), "fp", texts, "query", batch_size=2, max_seq_length=16, show_progress=False)
    assert third.cached and Model.calls == 2  # whole again
    np.save(path, np.ones((2, 3), dtype=np.float32))  # an entry of the wrong size is a miss too
    assert not encode_cached(Model(), "fp", texts, "query", batch_size=2, max_seq_length=16,
                             show_progress=False).cached
