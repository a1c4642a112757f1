"""Evaluate one model on one dataset: encode (cached), search, rank, score, write."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


from xlir.evaluation.config import EvalConfig
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
    """Evaluate one model on one dataset, zero-shot, with the LAReQA protocol (docs/METHOD.md section 2).

    One call gives every number the gates, the model card and the reports read: the mAP of every
    (query language, pool language) pair, its Mo./Cr. averages, Mul. mAP in the multilingual pool,
    R@1/R@10 and the rank distance (language bias). A dense encoder and BM25 are scored the same
    way, and every intermediate is written out, so any number can be recomputed.

    The dataset is loaded (``cfg.dataset``, ``cfg.split``); ``cfg.max_questions_per_lang`` questions
    per language are drawn with ``cfg.seed`` (one seeded order of parallel ids, so a parallel dataset
    gets the same ids in every language), while the candidate pool stays complete. Queries and candidates are encoded with the model's ``query``
    and ``document`` prompts through the on-disk embedding cache, so the same model on the same
    texts is not encoded twice; with ``cfg.model == "bm25"`` one BM25 index over the whole pool
    scores them instead. Every relevant candidate is then ranked exactly against the whole pool,
    with ties broken by pool position.

    Args:
        cfg: what to evaluate and how: the model (a base-model spec, a trained model folder or
            ``"bm25"``), dataset and split, question subset and its seed, candidate text (the
            sentence, or sentence and paragraph), max length, encoding batch size, precision
            (``int8`` is the fast path; the registry never gates on it), ``train_languages`` (adds
            ``.seen`` / ``.unseen`` averages), depth of the TREC run, and the output folder.
        progress: show a progress bar while ranking.

    Returns:
        An ``EvalResult``:

        - ``metrics``: stable names under the dataset's prefix, sorted (``xquad_r.map.mo``,
          ``xquad_r.map.en.de``, ``xquad_r.map.mul.th``, ``xquad_r.rank_distance``, ...). A
          one-language dataset also gets ``{prefix}.map``, ``.r1`` and ``.r10``, and ``.mrr`` when
          every query has exactly one relevant candidate (DREAM).
        - ``per_language``: Mo., Cr. and Mul. mAP, Mul. R@10 and rank distance per query language.
        - ``info``: model, dataset name and version, languages, question and candidate counts, the
          config, the model fingerprint, encoding and metric seconds.
        - ``output_dir``: ``cfg.output_dir``, or a folder under the xlir cache named by dataset,
          model fingerprint and config.
        - ``files``: what was written there: ``metrics.json``, ``map_matrix.csv`` and its heatmap
          ``map_matrix.png``, ``per_language.md``, ``per_query.csv.gz``, ``ranks.tsv.gz``,
          ``run.trec.gz`` and ``qrels.tsv``.

    Example:
        ```python
        from xlir.evaluation import EvalConfig, evaluate

        result = evaluate(EvalConfig(model="bundled:multilingual-e5-small", dataset="xquad-r",
                                     max_questions_per_lang=50))
        result.metrics["xquad_r.map.mul"], result.metrics["xquad_r.rank_distance"]
        print(result.per_language)            # one row per query language
        result.files["ranks"]                 # every relevant candidate's rank, to recheck any AP
        ```
    """
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
