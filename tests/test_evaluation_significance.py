"""Paired tests: a real difference is found, no difference is not, CI brackets the truth."""

import numpy as np
import pandas as pd
import pytest

from xlir.evaluation.significance import compare, paired_test, per_query_scores


def test_clear_improvement_is_significant_and_ci_brackets_it():
    rng = np.random.default_rng(0)
    b = rng.uniform(0, 1, 400)
    a = np.clip(b + 0.05 + rng.normal(0, 0.05, 400), 0, 1)
    t = paired_test(a, b, resamples=2000)
    assert t.p_value < 0.01
    assert t.ci_low < t.diff < t.ci_high and t.ci_low > 0


def test_identical_systems_are_not_significant():
    rng = np.random.default_rng(1)
    b = rng.uniform(0, 1, 300)
    a = b + rng.normal(0, 0.05, 300)  # noise only, no shift
    a = a - (a - b).mean()
    t = paired_test(a, b, resamples=2000)
    assert t.p_value > 0.5 and t.ci_low < 0 < t.ci_high


def test_per_query_scores_pick_the_right_pools():
    pq = pd.DataFrame({
        "query_id": ["en:1", "en:1", "en:1", "de:1", "de:1", "de:1"],
        "query_lang": ["en", "en", "en", "de", "de", "de"],
        "pool": ["en", "de", "mul", "en", "de", "mul"],
        "ap": [1.0, 0.5, 0.7, 0.25, 1.0, 0.6],
        "rank_distance": [np.nan, np.nan, 3, np.nan, np.nan, 5],
    })
    assert per_query_scores(pq, "mo").to_dict() == {"en:1": 1.0, "de:1": 1.0}
    assert per_query_scores(pq, "cr").to_dict() == {"de:1": 0.25, "en:1": 0.5}
    assert per_query_scores(pq, "mul").to_dict() == {"en:1": 0.7, "de:1": 0.6}
    assert compare(pq, pq, "mul").diff == 0
    with pytest.raises(ValueError):
        per_query_scores(pq, "bogus")
