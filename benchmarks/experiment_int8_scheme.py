"""Which linear layers to quantise for the int8 fast path, chosen on validation data.

Quantising every ``nn.Linear`` of the encoder to int8 (dynamic, per-channel weights) keeps the
embedding cosine to fp32 at about 0.99, yet moves XQuAD-R's metrics by 0.03-0.07 (bench_precision.py):
in a pool of 13,000 sentences small perturbations reorder close candidates. Activation outliers are
the usual cause, and they sit in particular layers (the FFN's second projection reads GELU outputs).
So each scheme below keeps some layers in fp32, and is scored on the held-out MLQA-R validation ids
(training-side data, never a test set): the metric deltas against fp32 and the encoding speed-up on
the same texts, side by side. The scheme with the smallest deltas at a useful speed-up becomes
``xlir.models.runtime.INT8_LAYERS``.

Writes benchmarks/results/int8_scheme.json and int8_scheme.md.

    python benchmarks/experiment_int8_scheme.py [--model SPEC] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).with_name("results")
SCHEMES = {  # name -> layer kinds quantised (the rest stay fp32)
    "all": ("query", "key", "value", "attention.output", "intermediate", "output"),
    "no-ffn-out": ("query", "key", "value", "attention.output", "intermediate"),
    "no-outputs": ("query", "key", "value", "intermediate"),
    "ffn-in-only": ("intermediate",),
    "attention-only": ("query", "key", "value", "attention.output"),
}


def layer_kind(name: str) -> str | None:
    """``encoder.layer.3.attention.self.query`` -> ``query``; ``...layer.3.output.dense`` -> ``output``."""
    parts = name.split(".")
    if "layer" not in parts or not name.endswith(("query", "key", "value", "dense")):
        return None
    if parts[-1] in ("query", "key", "value"):
        return parts[-1]
    if parts[-3:] == ["attention", "output", "dense"]:
        return "attention.output"
    if parts[-2] in ("intermediate", "output"):
        return parts[-2]
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="bundled:multilingual-e5-small")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--schemes", default=",".join(SCHEMES))
    a = ap.parse_args()

    import numpy as np

    from xlir.models import load_encoder
    from xlir.models.runtime import configure_threads, quantize_int8
    from xlir.training import prepare_training_data
    from xlir.training.selection import RetrievalValidation

    threads = configure_threads()
    val = RetrievalValidation.from_training_data(prepare_training_data(["mlqa-r"], seed=0, validation_fraction=0.1))
    model = load_encoder(a.model, max_seq_length=val.max_seq_length)
    texts = val.task.candidate_texts("sentence")
    kinds = {n: layer_kind(n) for n, _ in model.named_modules()}

    def timed_embed(m):
        t0 = time.perf_counter()
        q, c = val.embed(m)
        return q, c, time.perf_counter() - t0

    q32, c32, _ = timed_embed(model)
    ref = val.score_embeddings(q32, c32)
    rows = []
    for scheme in a.schemes.split(","):
        layers = [n for n, k in kinds.items() if k in SCHEMES[scheme]]
        qm = quantize_int8(model, layers=layers)
        secs = {"fp32": [], "int8": []}
        for _ in range(a.repeats):  # alternated, same texts
            secs["fp32"].append(timed_embed(model)[2])
            q8, c8, s8 = timed_embed(qm)
            secs["int8"].append(s8)
        got = val.score_embeddings(q8, c8)
        cos = (c8 * c32).sum(1)
        speed = statistics.median(secs["fp32"]) / statistics.median(secs["int8"])
        rows.append({"scheme": scheme, "layers": len(layers), "speedup": speed, "seconds": secs,
                     "cosine_mean": float(cos.mean()), "cosine_min": float(np.min(cos)),
                     "fp32": ref, "int8": got, "delta": {k: got[k] - ref[k] for k in ref}})
        print(json.dumps({k: rows[-1][k] for k in ("scheme", "layers", "speedup", "cosine_mean", "delta")}))
    recorded = RESULTS / "int8_scheme.json"
    if recorded.is_file():  # a rerun of some schemes replaces their rows and keeps the others
        done = {r["scheme"] for r in rows}
        rows = [r for r in json.loads(recorded.read_text())["rows"] if r["scheme"] not in done] + rows
        rows.sort(key=lambda r: list(SCHEMES).index(r["scheme"]))
    out = {"model": a.model, "torch_threads": threads, "validation": val.size, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "int8_scheme.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = ["# int8 schemes on the MLQA-R validation ids", "",
             f"{val.size['questions']} questions, {val.size['candidates']}-sentence pool; {threads} torch threads.", "",
             "| scheme | layers int8 | speed-up | cosine (mean / min) | d Mo. | d Cr. | d Mul. | d rank distance |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        d = r["delta"]
        lines.append(f"| {r['scheme']} | {r['layers']} | {r['speedup']:.2f}x | {r['cosine_mean']:.4f} / {r['cosine_min']:.4f} | "
                     f"{d['val.map.mo']:+.4f} | {d['val.map.cr']:+.4f} | {d['val.map.mul']:+.4f} | {d['val.rank_distance']:+.1f} |")
    (RESULTS / "int8_scheme.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
