"""Encodings of one ``make run`` on a fresh cache, counted from the encoding ledger.

Every encoding xlir computes (not read from the cache) appends a line to
``<cache>/embeddings/ledger.jsonl`` (``xlir.evaluation.encode``). After a ``make run`` with
``XLIR_CACHE_DIR`` pointing at an empty folder, this summarises that ledger: encoder calls, texts
sent and distinct texts, per model and prompt, and any encoding computed twice (the same cache key
twice, or the same model, prompt and texts).

    XLIR_CACHE_DIR=/tmp/fresh make run
    python benchmarks/count_encodings.py --cache /tmp/fresh --label after

The "before" figure ran the previous main (26bf31e) with only the ledger added (its steps:
docs/RESULTS.md). Writes benchmarks/results/encodings.json (one entry per label).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

RESULTS = Path(__file__).with_name("results") / "encodings.json"


def summarise(rows: list[dict]) -> dict:
    by = Counter()
    texts = Counter()
    for r in rows:
        who = "model in training" if r["fingerprint"] is None else r["fingerprint"]
        by[(who, r["prompt"])] += 1
        texts[(who, r["prompt"])] += r["texts"]
    keys = Counter(r["key"] for r in rows if r["key"])
    return {
        "encodings": len(rows),
        "texts": sum(r["texts"] for r in rows),
        "distinct_texts_per_call": sum(r.get("unique_texts", r["texts"]) for r in rows),
        "seconds": round(sum(r["seconds"] for r in rows), 1),
        "computed_twice": {k: n for k, n in keys.items() if n > 1},
        "by_model_and_prompt": [{"model": m, "prompt": p, "calls": n, "texts": texts[(m, p)]} for (m, p), n in by.items()],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, required=True, help="the XLIR_CACHE_DIR of the run")
    ap.add_argument("--label", required=True, help="before / after")
    a = ap.parse_args()
    ledger = a.cache / "embeddings" / "ledger.jsonl"
    rows = [json.loads(line) for line in ledger.read_text().splitlines() if line.strip()]
    out = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    out[a.label] = summarise(rows)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out[a.label], indent=2))


if __name__ == "__main__":
    main()
