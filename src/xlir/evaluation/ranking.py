"""Exact ranks of every relevant candidate, in the multilingual pool and in each language's pool.

One similarity block (a chunk of queries x the whole pool) at a time, so memory stays bounded
whatever the pool size. Candidates are laid out grouped by language; a relevant candidate's
rank in its own language's pool is the number of same-language candidates that beat it, plus
one, and its multilingual rank the number over all languages, plus one. Ties are broken by
pool position (earlier wins), the same rule the top-k run file uses, so every number can be
recomputed from the written files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

ScoreBlock = Callable[[int, int], np.ndarray]
"""``score_block(start, stop)`` -> float32 scores of queries ``start:stop`` against the pool."""


@dataclass(frozen=True)
class RelevantRanks:
    """One row per (query, relevant candidate): 1-based ranks, ``rank_single`` within the
    candidate's own language pool, ``rank_mul`` within the whole pool."""

    query: np.ndarray
    candidate: np.ndarray
    rank_single: np.ndarray
    rank_mul: np.ndarray


@dataclass(frozen=True)
class RankResult:
    relevant: RelevantRanks
    top_index: np.ndarray  # [queries, k] pool indices, best first
    top_score: np.ndarray  # [queries, k]


def rank_relevant(
    score_block: ScoreBlock,
    relevant: list[np.ndarray],
    lang_starts: np.ndarray,
    n_candidates: int,
    *,
    chunk_size: int = 128,
    top_k: int = 100,
    progress: Callable[[int], None] | None = None,
) -> RankResult:
    """Ranks of ``relevant[q]`` (pool indices) for every query ``q``, plus the top-k run.

    ``lang_starts`` holds the first pool index of each language segment (sorted, starting at 0).
    """
    n_queries = len(relevant)
    k = min(top_k, n_candidates)
    bounds = list(zip(lang_starts, list(lang_starts[1:]) + [n_candidates]))
    seg = np.searchsorted(lang_starts, np.arange(n_candidates), side="right") - 1
    out_q, out_c, out_single, out_mul = [], [], [], []
    top_index = np.empty((n_queries, k), dtype=np.int64)
    top_score = np.empty((n_queries, k), dtype=np.float32)
    columns = np.arange(n_candidates)
    for start in range(0, n_queries, chunk_size):
        stop = min(start + chunk_size, n_queries)
        scores = np.asarray(score_block(start, stop), dtype=np.float32)
        rows = stop - start
        width = max(1, max(len(relevant[q]) for q in range(start, stop)))
        rel = np.zeros((rows, width), dtype=np.int64)
        valid = np.zeros((rows, width), dtype=bool)
        for i, q in enumerate(range(start, stop)):
            rel[i, : len(relevant[q])] = relevant[q]
            valid[i, : len(relevant[q])] = True
        rel_score = np.take_along_axis(scores, rel, axis=1)[:, :, None]
        block = scores[:, None, :]
        per_lang = _segment_counts(block > rel_score, bounds)
        # Ties (duplicate sentences; BM25's zero scores): an equal score earlier in the pool wins.
        tied_b, tied_r = np.nonzero(((block == rel_score).sum(axis=2) > 1) & valid)
        if len(tied_b):
            earlier = (scores[tied_b] == rel_score[tied_b, tied_r]) & (columns[None, :] < rel[tied_b, tied_r][:, None])
            per_lang[tied_b, tied_r] += _segment_counts(earlier, bounds)
        rank_mul = per_lang.sum(axis=2) + 1
        rank_single = np.take_along_axis(per_lang, seg[rel][:, :, None], axis=2)[:, :, 0] + 1
        qi, ri = np.nonzero(valid)
        out_q.append(qi + start)
        out_c.append(rel[qi, ri])
        out_single.append(rank_single[qi, ri])
        out_mul.append(rank_mul[qi, ri])
        idx, val = _top_k(scores, k)
        top_index[start:stop], top_score[start:stop] = idx, val
        if progress:
            progress(rows)
    cat = (lambda parts: np.concatenate(parts) if parts else np.empty(0, dtype=np.int64))
    return RankResult(
        RelevantRanks(cat(out_q), cat(out_c), cat(out_single), cat(out_mul)), top_index, top_score
    )


def _segment_counts(mask: np.ndarray, bounds) -> np.ndarray:
    """Count true values of ``mask[..., N]`` per language segment -> ``[..., L]``.

    Slice sums: ten times faster than ``np.add.reduceat`` on boolean input.
    """
    return np.stack([mask[..., a:b].sum(axis=-1) for a, b in bounds], axis=-1)


def _top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k per row ordered by (score desc, pool index asc): the ranking rule above.

    torch.topk selects (2.5x faster than argpartition here); among candidates tied exactly at
    the k-th score, which ones make the cut is not specified.
    """
    import torch

    part = torch.topk(torch.from_numpy(scores), k, dim=1, sorted=False).indices.numpy()
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    return idx, np.take_along_axis(scores, idx, axis=1)
