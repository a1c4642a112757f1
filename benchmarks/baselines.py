"""Baselines for docs/RESULTS.md: BM25 and the untuned base encoder on every dataset.

Writes benchmarks/results/baselines.json and benchmarks/results/baselines.md.

    python benchmarks/baselines.py [--models bm25,bundled:multilingual-e5-small]   # max length 256
        [--datasets xquad-r,mlqa-r,dream] [--max-questions-per-lang N]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from xlir.evaluation.config import EvalConfig
from xlir.evaluation import evaluate, metric_prefix

RESULTS = Path(__file__).with_name("results")
COLUMNS = [("map.mo", "Mo. mAP"), ("map.cr", "Cr. mAP"), ("map.mul", "Mul. mAP"), ("r1.mo", "Mo. R@1"),
           ("r1.cr", "Cr. R@1"), ("r10.mul", "Mul. R@10"), ("rank_distance", "rank distance")]
DREAM_COLUMNS = [("map", "mAP (= MRR)"), ("r1", "R@1"), ("r10", "R@10")]


def table(rows: list[dict], dataset: str) -> str:
    cols = DREAM_COLUMNS if dataset == "dream" else COLUMNS
    prefix = metric_prefix(dataset)
    lines = ["| model | " + " | ".join(c for _, c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for r in rows:
        cells = [f"{r['metrics'][f'{prefix}.{k}']:.1f}" if k == "rank_distance" else f"{r['metrics'][f'{prefix}.{k}']:.3f}" for k, _ in cols]
        lines.append(f"| {r['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="bm25,bundled:multilingual-e5-small")
    ap.add_argument("--datasets", default="xquad-r,mlqa-r,dream")
    ap.add_argument("--max-questions-per-lang", type=int, default=None)
    args = ap.parse_args()
    rows = []
    for dataset in args.datasets.split(","):
        for model in args.models.split(","):
            cfg = EvalConfig(model=model, dataset=dataset, max_questions_per_lang=args.max_questions_per_lang,
                             max_seq_length=256)  # the recorded baselines: full texts of DREAM's dialogues
            result = evaluate(cfg)
            rows.append({"model": model, "dataset": dataset, "metrics": result.metrics, "info": result.info})
            print(f"{dataset} {model}: mul {result.metrics.get(metric_prefix(dataset) + '.map.mul'):.3f}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "baselines.json").write_text(json.dumps(rows, indent=2, default=str))
    md = []
    for dataset in args.datasets.split(","):
        md += [f"### {dataset}", "", table([r for r in rows if r["dataset"] == dataset], dataset), ""]
    (RESULTS / "baselines.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
