"""A fast path (int8 or bf16) against fp32: encoding speed and what it does to the metrics.

1. Speed: the same XQuAD-R candidate sentences (a seeded sample, default 2,000) encoded by the
   bundled encoder in fp32 and at the fast precision (``xlir.models.runtime``: int8 quantisation, or
   bf16 autocast), alternated in one process, ``--repeats`` rounds each, at the pipeline's max
   length; the ratio of the medians, and the cosine of each fast embedding to its fp32 one.
2. Metrics: ``xlir evaluate`` in fp32 and at the fast precision on the full XQuAD-R candidate pool
   (every sentence of every language) for the untuned encoder and one fine-tuned encoder:
   Mo./Cr./Mul. mAP and rank distance, the fast - fp32 deltas, and a paired test per setting over
   the same queries (``xlir.evaluation.significance``). fp32 embeddings come from the cache where an
   earlier run computed them; each fast evaluation is computed here (timed).

Writes benchmarks/results/precision.json and precision.md (int8), precision_bf16.{json,md} (bf16).

    python benchmarks/bench_precision.py --finetuned PATH [--questions-per-lang 50] [--sentences 2000]
    python benchmarks/bench_precision.py --finetuned PATH --keep-fp32 '' --name precision_all   # every layer int8
    python benchmarks/bench_precision.py --finetuned PATH --precision bf16                     # CPUs with AMX / AVX-512 BF16
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

from xlir.config import DEFAULT_BASE_MODEL
from xlir.evaluation.config import EvalConfig
from xlir.data import load_dataset
from xlir.evaluation import evaluate
from xlir.evaluation.significance import compare
from xlir.models import load_encoder
from xlir.models.runtime import available_cores, configure_threads, native_bf16, quantize_int8

RESULTS = Path(__file__).with_name("results")
SETTINGS = ("mo", "cr", "mul", "rank_distance")


def bench_speed(n: int, max_seq_length: int, repeats: int, fast: str, batch_size: int = 64) -> dict:
    texts = load_dataset("xquad-r").candidates["sentence"].sample(n=n, random_state=0).tolist()
    fp32 = load_encoder(DEFAULT_BASE_MODEL, max_seq_length=max_seq_length)
    quick = quantize_int8(fp32) if fast == "int8" else load_encoder(DEFAULT_BASE_MODEL, max_seq_length=max_seq_length,
                                                                    precision=fast)
    kw = dict(prompt_name="document", batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
    times: dict[str, list[float]] = {"fp32": [], fast: []}
    emb = {}
    for _ in range(repeats):
        for name, model in (("fp32", fp32), (fast, quick)):
            t0 = time.perf_counter()
            emb[name] = model.encode(texts, **kw)
            times[name].append(time.perf_counter() - t0)
    cos = (emb["fp32"] * emb[fast]).sum(1)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "sentences": n, "max_seq_length": max_seq_length, "batch_size": batch_size, "repeats": repeats,
        "seconds": times, "median_seconds": med, "sentences_per_s": {k: n / v for k, v in med.items()},
        f"speedup_{fast}_over_fp32": med["fp32"] / med[fast],
        "cosine_to_fp32": {"mean": float(cos.mean()), "min": float(cos.min()), "p01": float(np.quantile(cos, 0.01))},
    }


def per_query(result) -> pd.DataFrame:
    return pd.read_csv(result.files["per_query"])


def bench_metrics(models: dict[str, str], per_lang: int | None, max_seq_length: int, fast: str) -> list[dict]:
    rows = []
    for label, spec in models.items():
        got = {}
        for precision in ("fp32", fast):
            cfg = EvalConfig(model=spec, dataset="xquad-r", max_questions_per_lang=per_lang, max_seq_length=max_seq_length,
                             precision=precision)
            t0 = time.perf_counter()
            got[precision] = evaluate(cfg, progress=False)
            got[precision].info["wall_seconds"] = time.perf_counter() - t0
        f, i = got["fp32"], got[fast]
        row = {"model": label, "spec": spec, "questions": f.info["questions"], "candidates": f.info["candidates"],
               "encode_seconds": {p: got[p].info["encode_seconds"] for p in got},
               "encode_cached": {p: got[p].info["embeddings_cached"] for p in got}}
        pq_f, pq_i = per_query(f), per_query(i)
        for s in SETTINGS:
            name = "xquad_r.rank_distance" if s == "rank_distance" else f"xquad_r.map.{s}"
            test = compare(pq_i, pq_f, s)
            row[s] = {"fp32": f.metrics[name], fast: i.metrics[name], "delta": i.metrics[name] - f.metrics[name],
                      "paired_mean_diff": test.diff, "ci": [test.ci_low, test.ci_high], "p_value": test.p_value}
        rows.append(row)
    return rows


def markdown(out: dict) -> str:
    s, fast = out["speed"], out.get("precision", "int8")
    lines = [
        f"# {fast} fast path vs fp32", "",
        f"Machine: {out['machine']['cpus']} cores ({out['machine']['cpu']}), {out['machine']['torch_threads']} torch threads"
        + (f", native bf16: {', '.join(out['machine']['native_bf16']) or 'none'}" if "native_bf16" in out["machine"] else "")
        + ".", "",
        f"Speed: {s['sentences']} XQuAD-R sentences, max length {s['max_seq_length']}, {s['repeats']} alternated rounds: "
        f"fp32 {s['median_seconds']['fp32']:.1f} s, {fast} {s['median_seconds'][fast]:.1f} s, "
        f"**{s[f'speedup_{fast}_over_fp32']:.2f}x**; cosine {fast} to fp32 mean {s['cosine_to_fp32']['mean']:.5f}, "
        f"min {s['cosine_to_fp32']['min']:.5f}.", "",
        f"| model | questions x pool | setting | fp32 | {fast} | {fast} - fp32 | 95% CI | p |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in out["metrics"]:
        for st in SETTINGS:
            m = r[st]
            fmt = "{:.1f}" if st == "rank_distance" else "{:.4f}"
            lines.append(
                f"| {r['model']} | {r['questions']} x {r['candidates']} | {st} | {fmt.format(m['fp32'])} | "
                f"{fmt.format(m[fast])} | {m['delta']:+.4f} | [{m['ci'][0]:+.4f}, {m['ci'][1]:+.4f}] | {m['p_value']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--finetuned", help="a fine-tuned model folder (needed unless --skip-metrics)")
    ap.add_argument("--questions-per-lang", type=int, default=50, help="0: every question")
    ap.add_argument("--sentences", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--skip-speed", action="store_true", help="keep the recorded speed part")
    ap.add_argument("--skip-metrics", action="store_true", help="keep the recorded metrics part")
    ap.add_argument("--precision", choices=("int8", "bf16"), default="int8", help="the fast path measured against fp32")
    ap.add_argument("--name", default=None, help="results file stem (default: precision, or precision_bf16)")
    ap.add_argument("--keep-fp32", default=None,
                    help="comma-separated patterns (re.search) of linear layer names left in fp32; '' quantises "
                         "every linear layer (precision_all); default: the library's scheme")
    a = ap.parse_args()
    a.name = a.name or ("precision" if a.precision == "int8" else f"precision_{a.precision}")
    if a.keep_fp32 is not None:
        from xlir.models.runtime import set_int8_keep_fp32

        set_int8_keep_fp32(a.keep_fp32)
    threads = configure_threads()
    out = {"precision": a.precision,
           "machine": {"cpus": available_cores(), "torch_threads": threads, "cpu": platform.processor() or platform.machine(),
                       "python": platform.python_version(), "native_bf16": native_bf16()}}
    if not a.skip_speed:
        out["speed"] = bench_speed(a.sentences, a.max_seq_length, a.repeats, a.precision)
        print(json.dumps(out["speed"], indent=1))
    elif (RESULTS / f"{a.name}.json").is_file():
        out["speed"] = json.loads((RESULTS / f"{a.name}.json").read_text())["speed"]
    if a.skip_metrics:
        recorded = json.loads((RESULTS / f"{a.name}.json").read_text())
        out["metrics"], out["finetuned"] = recorded["metrics"], recorded["finetuned"]
    else:
        out["metrics"] = bench_metrics({"untuned": DEFAULT_BASE_MODEL, "fine-tuned": a.finetuned},
                                       a.questions_per_lang or None, a.max_seq_length, a.precision)
        out["finetuned"] = a.finetuned
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{a.name}.json").write_text(json.dumps(out, indent=2) + "\n")
    (RESULTS / f"{a.name}.md").write_text(markdown(out))
    print(markdown(out))


if __name__ == "__main__":
    main()
