"""Paired significance tests on per-query scores (the paper reported none).

A paired randomisation (sign-flip) test for the p-value and a paired bootstrap for the
confidence interval of the mean difference; both resample queries, the unit the metrics
average over.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class PairedTest:
    n: int
    mean_a: float
    mean_b: float
    diff: float  # mean(a - b)
    ci_low: float
    ci_high: float
    p_value: float  # two-sided

    def as_dict(self) -> dict:
        return asdict(self)


def paired_test(a, b, *, resamples: int = 10_000, seed: int = 0, confidence: float = 0.95) -> PairedTest:
    """Two-sided paired randomisation test and bootstrap CI of ``mean(a - b)``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError("paired_test needs two 1-d arrays of the same, non-zero length")
    d = a - b
    rng = np.random.default_rng(seed)
    observed = abs(d.mean())
    flips = np.empty(resamples)
    boots = np.empty(resamples)
    for start in range(0, resamples, 1000):  # bounded memory for large query sets
        k = min(1000, resamples - start)
        signs = rng.choice(np.array([-1.0, 1.0]), size=(k, len(d)))
        flips[start : start + k] = np.abs((signs * d).mean(axis=1))
        boots[start : start + k] = d[rng.integers(0, len(d), size=(k, len(d)))].mean(axis=1)
    p = (1 + np.sum(flips >= observed - 1e-15)) / (resamples + 1)
    lo, hi = np.quantile(boots, [(1 - confidence) / 2, 1 - (1 - confidence) / 2])
    return PairedTest(len(d), float(a.mean()), float(b.mean()), float(d.mean()), float(lo), float(hi), float(p))


def per_query_scores(per_query: pd.DataFrame, setting: str) -> pd.Series:
    """One number per query for a setting, from an evaluation's ``per_query`` table.

    ``mul``: AP in the multilingual pool; ``mo``: AP in the query's own language pool;
    ``cr``: mean AP over the other languages' pools; ``rank_distance``: its rank distance.
    """
    pq = per_query
    if setting == "mul":
        return pq[pq["pool"] == "mul"].set_index("query_id")["ap"]
    if setting == "rank_distance":
        return pq[pq["pool"] == "mul"].set_index("query_id")["rank_distance"]
    single = pq[pq["pool"] != "mul"]
    same = single["pool"] == single["query_lang"]
    if setting == "mo":
        return single[same].set_index("query_id")["ap"]
    if setting == "cr":
        return single[~same].groupby("query_id")["ap"].mean()
    raise ValueError(f"unknown setting {setting!r}: mul, mo, cr or rank_distance")


def compare(per_query_a: pd.DataFrame, per_query_b: pd.DataFrame, setting: str, **kw) -> PairedTest:
    """Paired test of model A against model B on the queries both were evaluated on."""
    a, b = per_query_scores(per_query_a, setting), per_query_scores(per_query_b, setting)
    common = a.index.intersection(b.index)
    return paired_test(a.loc[common].to_numpy(), b.loc[common].to_numpy(), **kw)
