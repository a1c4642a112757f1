"""Benchmark of the evaluation engine; writes benchmarks/results/evaluation.json.

1. Metric time: from cached embeddings, every metric of a dataset (ranks in the multilingual
   pool and in every single-language pool, Mo./Cr./Mul., R@k, rank distance) by xlir, against
   trec_eval through ir_measures computing the same APs from a run, on the same queries, side
   by side. The reference gets its runs ready-made (their construction is not timed); xlir's
   time includes computing the scores.
2. Metric time over the full dataset against the time it took to encode it.
3. Encoding throughput: xlir's encoder call against a plain loop of
   ``SentenceTransformer.encode`` over batches of the same texts, alternated.

    python benchmarks/bench_evaluation.py [--model SPEC] [--datasets xquad-r,mlqa-r]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from xlir.data import load_dataset
from xlir.evaluation.encode import encode_cached
from xlir.evaluation.metrics import per_query_table, summarize
from xlir.evaluation.ranking import rank_relevant
from xlir.evaluation.task import build_task
from xlir.models import load_encoder, model_fingerprint

RESULTS = Path(__file__).with_name("results") / "evaluation.json"


def xlir_metrics(task, q, c):
    r = rank_relevant(lambda a, b: q[a:b] @ c.T, task.relevant, task.lang_starts, len(c)).relevant
    table = per_query_table(r.query, r.candidate, r.rank_single, r.rank_mul, task.queries["lang"].to_numpy(), task.candidates["lang"].to_numpy())
    return table, summarize(table, "x", task.languages)[0]


def reference_metrics(task, q, c):
    """trec_eval (ir_measures) AP for every query in the multilingual pool and every pool language."""
    import ir_measures

    cand_ids = task.candidates["candidate_id"].to_numpy()
    c_lang = task.candidates["lang"].to_numpy()
    qids = task.queries["query_id"].tolist()
    scores = q @ c.T
    pools = {"mul": np.arange(len(c))} | {lang: np.nonzero(c_lang == lang)[0] for lang in task.languages}
    prepared = {}
    for pool, cols in pools.items():
        run = {qid: dict(zip(cand_ids[cols].tolist(), scores[i, cols].astype(float).tolist())) for i, qid in enumerate(qids)}
        in_pool = set(cand_ids[cols].tolist())
        qrels = {qid: {cand_ids[j]: 1 for j in task.relevant[i] if cand_ids[j] in in_pool} for i, qid in enumerate(qids)}
        prepared[pool] = ({k: v for k, v in qrels.items() if v}, run)
    t0 = time.perf_counter()
    values = {}
    for pool, (qrels, run) in prepared.items():
        for m in ir_measures.iter_calc([ir_measures.AP], qrels, run):
            values[(m.query_id, pool)] = m.value
    return values, time.perf_counter() - t0


def bench_metrics(name, model, fingerprint, per_lang, repeats=3):
    ds = load_dataset(name)
    full = build_task(ds)
    ce = encode_cached(model, fingerprint, full.candidate_texts("sentence"), "document", batch_size=64, max_seq_length=256)
    qe = encode_cached(model, fingerprint, full.queries["question"].tolist(), "query", batch_size=64, max_seq_length=256)
    c, q = ce.embeddings, qe.embeddings
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        xlir_metrics(full, q, c)
        times.append(time.perf_counter() - t0)
    sub = build_task(ds, per_lang, seed=0)
    pos = {qid: i for i, qid in enumerate(full.queries["query_id"])}
    qs = q[[pos[x] for x in sub.queries["query_id"]]]
    ours_t, ref_t = [], []
    for _ in range(repeats):  # alternate, so background load hits both alike
        t0 = time.perf_counter()
        table, _ = xlir_metrics(sub, qs, c)
        ours_t.append(time.perf_counter() - t0)
        ref, elapsed = reference_metrics(sub, qs, c)
        ref_t.append(elapsed)
    qid = sub.queries["query_id"].to_numpy()
    worst = max(abs(row.ap - ref[(qid[row.query], row.pool)]) for row in table.itertuples())
    return {
        "dataset": name,
        "queries": len(full.queries),
        "candidates": len(full.candidates),
        "full_metric_seconds_median": float(np.median(times)),
        "encode_seconds": ce.seconds + qe.seconds,
        "metric_share_of_encoding": float(np.median(times)) / (ce.seconds + qe.seconds),
        "reference_queries": len(sub.queries),
        "xlir_seconds_median": float(np.median(ours_t)),
        "ir_measures_seconds_median": float(np.median(ref_t)),
        "speedup_vs_ir_measures": float(np.median(ref_t) / np.median(ours_t)),
        "max_abs_ap_difference": float(worst),
    }


def bench_encoding(model, texts, batch_size=64, repeats=2):
    ours, plain = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.encode(texts, prompt_name="document", batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True)
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for i in range(0, len(texts), batch_size):
            model.encode(texts[i : i + batch_size], prompt_name="document", batch_size=batch_size, normalize_embeddings=True)
        plain.append(time.perf_counter() - t0)
    return {
        "texts": len(texts),
        "xlir_candidates_per_s": len(texts) / float(np.median(ours)),
        "plain_loop_candidates_per_s": len(texts) / float(np.median(plain)),
        "ratio": float(np.median(plain) / np.median(ours)),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="bundled:multilingual-e5-small")
    ap.add_argument("--datasets", default="xquad-r,mlqa-r")
    ap.add_argument("--reference-questions-per-lang", type=int, default=20)
    ap.add_argument("--encode-texts", type=int, default=512)
    ap.add_argument("--output", type=Path, default=RESULTS)
    args = ap.parse_args()
    model = load_encoder(args.model, max_seq_length=256)
    fingerprint = model_fingerprint(args.model)
    result = {"model": args.model, "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()}}
    result["metrics"] = [bench_metrics(d, model, fingerprint, args.reference_questions_per_lang) for d in args.datasets.split(",")]
    texts = build_task(load_dataset("xquad-r")).candidate_texts("sentence")
    rng = np.random.default_rng(0)
    sample = [texts[i] for i in rng.choice(len(texts), size=min(args.encode_texts, len(texts)), replace=False)]
    result["encoding"] = bench_encoding(model, sample)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
