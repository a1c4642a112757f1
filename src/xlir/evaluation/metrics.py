"""LAReQA metrics from relevant ranks (docs/METHOD.md section 2 is the contract).

AP over the full ranking: sum over relevant hits of (hits so far / rank), divided by the number
of relevant candidates. Mo. macro-averages X = Y pairs, Cr. X != Y pairs, Mul. the
multilingual pool per query language. Rank distance: max minus min multilingual rank over a
query's relevant candidates, averaged per query language, then over languages.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def average_precision(ranks) -> float:
    """AP of one query from the 1-based ranks of all its relevant candidates."""
    r = np.sort(np.asarray(ranks, dtype=np.float64))
    return float(np.mean(np.arange(1, len(r) + 1) / r)) if len(r) else float("nan")


def recall_at(ranks, k: int) -> float:
    r = np.asarray(ranks)
    return float(np.mean(r <= k)) if len(r) else float("nan")


def per_query_table(
    query: np.ndarray,
    candidate: np.ndarray,
    rank_single: np.ndarray,
    rank_mul: np.ndarray,
    query_lang: np.ndarray,
    candidate_lang: np.ndarray,
) -> pd.DataFrame:
    """One row per (query, pool): AP, R@1, R@10 and rank distance; pool ``mul`` or a language.

    Grouped vector operations; equals ``average_precision`` applied query by query.
    """
    hits = pd.DataFrame(
        {
            "query": query,
            "query_lang": query_lang[query],
            "pool": candidate_lang[candidate],
            "rank_single": rank_single,
            "rank_mul": rank_mul,
        }
    )
    single = _ap_frame(hits, "rank_single", ["query", "pool"])
    mul = _ap_frame(hits.assign(pool="mul"), "rank_mul", ["query", "pool"])
    spread = hits.groupby("query")["rank_mul"].agg(lambda r: r.max() - r.min())
    mul["rank_distance"] = spread.reindex(mul["query"]).to_numpy()
    table = pd.concat([single, mul], ignore_index=True)
    table["query_lang"] = query_lang[table["query"].to_numpy()]
    return table


def _ap_frame(hits: pd.DataFrame, rank_col: str, keys: list[str]) -> pd.DataFrame:
    h = hits.sort_values(keys + [rank_col], kind="stable")
    group = h.groupby(keys, sort=False)
    position = group.cumcount().to_numpy() + 1
    rank = h[rank_col].to_numpy()
    h = h.assign(prec=position / rank, r1=rank <= 1, r10=rank <= 10)
    agg = h.groupby(keys, sort=False).agg(ap=("prec", "mean"), r1=("r1", "mean"), r10=("r10", "mean"), n_relevant=("prec", "size"))
    return agg.reset_index()


def summarize(table: pd.DataFrame, prefix: str, languages: list[str], train_languages: list[str] | None = None) -> tuple[dict[str, float], pd.DataFrame]:
    """The stable metric names and the mAP matrix (rows: query language, columns: pool).

    Names: ``{prefix}.map.{mo,cr,mul}``, ``{prefix}.map.{x}.{y}``, ``{prefix}.map.mul.{x}``,
    ``{prefix}.r1.{mo,cr}``, ``{prefix}.r10.mul``, ``{prefix}.rank_distance[.{x}]``, and with
    training languages ``.seen`` / ``.unseen`` variants (a pair is seen when both languages are).
    """
    single = table[table["pool"] != "mul"]
    mul = table[table["pool"] == "mul"]
    pair = single.groupby(["query_lang", "pool"])[["ap", "r1"]].mean()
    matrix = pair["ap"].unstack().reindex(index=languages, columns=languages)
    m: dict[str, float] = {}
    for (x, y), row in pair.iterrows():
        m[f"{prefix}.map.{x}.{y}"] = row["ap"]
    diag = [(x, y) for x, y in pair.index if x == y]
    off = [(x, y) for x, y in pair.index if x != y]
    for name, pairs in (("mo", diag), ("cr", off)):
        if pairs:
            m[f"{prefix}.map.{name}"] = pair.loc[pairs, "ap"].mean()
            m[f"{prefix}.r1.{name}"] = pair.loc[pairs, "r1"].mean()
    by_lang = mul.groupby("query_lang")[["ap", "r10", "rank_distance"]].mean()
    for x, row in by_lang.iterrows():
        m[f"{prefix}.map.mul.{x}"] = row["ap"]
        m[f"{prefix}.rank_distance.{x}"] = row["rank_distance"]
    m[f"{prefix}.map.mul"] = by_lang["ap"].mean()
    m[f"{prefix}.r10.mul"] = by_lang["r10"].mean()
    m[f"{prefix}.rank_distance"] = by_lang["rank_distance"].mean()
    if train_languages:
        seen = set(train_languages)
        for tag, keep in (("seen", True), ("unseen", False)):
            d = [p for p in diag if (p[0] in seen) == keep]
            c = [p for p in off if (p[0] in seen and p[1] in seen) == keep]
            q = [x for x in by_lang.index if (x in seen) == keep]
            if d:
                m[f"{prefix}.map.mo.{tag}"] = pair.loc[d, "ap"].mean()
            if c:
                m[f"{prefix}.map.cr.{tag}"] = pair.loc[c, "ap"].mean()
            if q:
                m[f"{prefix}.map.mul.{tag}"] = by_lang.loc[q, "ap"].mean()
                m[f"{prefix}.rank_distance.{tag}"] = by_lang.loc[q, "rank_distance"].mean()
    return {k: float(v) for k, v in sorted(m.items())}, matrix
