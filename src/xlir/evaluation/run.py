"""Evaluate one model on one dataset: encode (cached), search, rank, score, write."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


from xlir.config import EvalConfig
from xlir.data import load_dataset
from xlir.evaluation import report
from xlir.evaluation.metrics import per_query_table, summarize
from xlir.evaluation.ranking import RankResult, rank_relevant
from xlir.evaluation.task import RetrievalTask, build_task
from xlir.paths import cache_dir

BM25 = "bm25"


@dataclass(frozen=True)
class EvalResult:
    metrics: dict[str, float]
    per_language: pd.DataFrame
    info: dict
    output_dir: Path
    files: dict[str, Path]


def metric_prefix(dataset: str) -> str:
    """``xquad-r`` -> ``xquad_r``: metric names keep to MLflow's allowed characters."""
    return dataset.replace("-", "_").replace(":", "_")


def _dense_scorer(cfg: EvalConfig, task: RetrievalTask, info: dict):
    import faiss

    from xlir.evaluation.encode import encode_cached
    from xlir.models import load_encoder, model_fingerprint
    from xlir.models.runtime import precision_fingerprint, torch_threads

    fingerprint = model_fingerprint(cfg.model)
    model = load_encoder(cfg.model, max_seq_length=cfg.max_seq_length, precision=cfg.precision)
    kw = dict(batch_size=cfg.batch_size, max_seq_length=cfg.max_seq_length)
    computes = precision_fingerprint(fingerprint, cfg.precision)  # int8 embeddings are cached apart
    cands = encode_cached(model, computes, task.candidate_texts(cfg.candidate_text), "document", **kw)
    queries = encode_cached(model, computes, task.queries["question"].tolist(), "query", **kw)
    info.update(
        model_fingerprint=fingerprint,
        encode_seconds=cands.seconds + queries.seconds,
        embeddings_cached=cands.cached and queries.cached,
        embedding_dim=int(cands.embeddings.shape[1]),
        precision=cfg.precision,
        torch_threads=torch_threads(),
    )
    q, c = queries.embeddings, cands.embeddings
    return lambda a, b: faiss.pairwise_distances(q[a:b], c, faiss.METRIC_INNER_PRODUCT)


def _bm25_scorer(cfg: EvalConfig, task: RetrievalTask, info: dict):
    from xlir.evaluation.bm25 import BM25Scorer

    t0 = time.perf_counter()
    scorer = BM25Scorer(task.candidate_texts(cfg.candidate_text))
    questions = task.queries["question"].tolist()
    info.update(model_fingerprint=BM25, encode_seconds=time.perf_counter() - t0, embeddings_cached=False)
    return lambda a, b: scorer.scores(questions[a:b])


def default_output_dir(cfg: EvalConfig, info: dict) -> Path:
    # fp32 is left out of the key so folders written before ``precision`` existed are found again
    exclude = {"output_dir"} | ({"precision"} if cfg.precision == "fp32" else set())
    key = hashlib.sha256(repr(sorted(cfg.model_dump(exclude=exclude).items())).encode()).hexdigest()[:10]
    return cache_dir() / "evaluations" / f"{metric_prefix(info['dataset'])}-{info['model_fingerprint'][:10]}-{key}"


def evaluate(cfg: EvalConfig, *, progress: bool = True) -> EvalResult:
    ds = load_dataset(cfg.dataset, split=cfg.split)
    task = build_task(ds, cfg.max_questions_per_lang, cfg.seed)
    info = {
        "model": cfg.model,
        "dataset": ds.name,
        "dataset_version": ds.version,
        "languages": task.languages,
        "questions": len(task.queries),
        "candidates": len(task.candidates),
        "config": cfg.model_dump(mode="json"),
    }
    score_block = (_bm25_scorer if cfg.model == BM25 else _dense_scorer)(cfg, task, info)
    t0 = time.perf_counter()
    bar = _progress(len(task.relevant), "ranking") if progress else None
    prefix = metric_prefix(ds.name)
    scored = score_task(task, score_block, prefix, cfg.train_languages, top_k=cfg.top_k,
                        progress=bar.update if bar else None)
    if bar:
        bar.close()
    metrics, matrix, table, result = scored.metrics, scored.matrix, scored.table, scored.ranks
    r = result.relevant
    if len(task.languages) == 1:
        lang = task.languages[0]
        metrics[f"{prefix}.map"] = metrics[f"{prefix}.map.{lang}.{lang}"]
        metrics[f"{prefix}.r1"] = metrics[f"{prefix}.r1.mo"]
        metrics[f"{prefix}.r10"] = metrics[f"{prefix}.r10.mul"]
        if all(len(x) == 1 for x in task.relevant):
            metrics[f"{prefix}.mrr"] = metrics[f"{prefix}.map"]
    info["metric_seconds"] = time.perf_counter() - t0
    lang_table = report.per_language_table(table, task.languages)
    out = cfg.output_dir or default_output_dir(cfg, info)
    files = report.write(
        Path(out), metrics=metrics, info=info, matrix=matrix, table=table, lang_table=lang_table, task=task, ranks=r,
        top_index=result.top_index, top_score=result.top_score, run_name=metric_prefix(cfg.model.replace("/", "_")),
    )
    return EvalResult(dict(sorted(metrics.items())), lang_table, info, Path(out), files)


@dataclass(frozen=True)
class ScoredTask:
    metrics: dict[str, float]
    matrix: pd.DataFrame
    table: pd.DataFrame
    ranks: RankResult


def score_task(task: RetrievalTask, score_block, prefix: str, train_languages: list[str] | None = None, *,
               top_k: int = 100, progress=None) -> ScoredTask:
    """Rank every query's relevant candidates with ``score_block`` and summarise: the one scoring path
    of ``evaluate`` and of the retrieval validation during training (``xlir.training.selection``)."""
    result = rank_relevant(score_block, task.relevant, task.lang_starts, len(task.candidates), top_k=top_k,
                           progress=progress)
    r = result.relevant
    q_lang = task.queries["lang"].to_numpy()
    c_lang = task.candidates["lang"].to_numpy()
    table = per_query_table(r.query, r.candidate, r.rank_single, r.rank_mul, q_lang, c_lang)
    metrics, matrix = summarize(table, prefix, task.languages, train_languages)
    return ScoredTask(metrics, matrix, table, result)


def _progress(total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="q", leave=False)


__all__ = ["EvalResult", "ScoredTask", "evaluate", "metric_prefix", "score_task"]
