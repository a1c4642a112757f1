"""Is a fast path (int8, bf16) fit for sweeps? Does it rank trained models the way fp32 does?

A sweep compares models and keeps the best; a fast path is fit for it if it orders them as fp32
does, even where it shifts every number. Each model below (default: every finished arm of the recipe
ablation, benchmarks/experiment_recipe.py, plus the untuned encoder) is scored on the held-out
MLQA-R validation ids (training-side data) in fp32 and at the fast precision; reported: each metric both ways,
Kendall's tau between the two orderings of every headline metric and of the selection criterion,
and whether both pick the same best model.

Writes benchmarks/results/int8_sweep.json and int8_sweep.md (bf16: bf16_sweep.{json,md}).

    python benchmarks/experiment_int8_sweep.py [--models DIR ...] [--precision bf16]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

RESULTS = Path(__file__).with_name("results")
METRICS = ("val.map.mo", "val.map.cr", "val.map.mul", "val.rank_distance", "val.criterion")


def kendall_tau(a: list[float], b: list[float]) -> float:
    n, s = len(a), 0
    for i in range(n):
        for j in range(i + 1, n):
            s += (1 if (a[i] - a[j]) * (b[i] - b[j]) > 0 else -1 if (a[i] - a[j]) * (b[i] - b[j]) < 0 else 0)
    return 2 * s / (n * (n - 1)) if n > 1 else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", help="model folders (default: the recipe ablation's finished arms)")
    ap.add_argument("--keep-fp32", default=None,
                    help="comma-separated patterns (re.search) of linear layer names left in fp32, e.g. "
                         "'layer\\.\\d+\\.output\\.dense$' (the FFN output projections); default: the library's")
    ap.add_argument("--precision", choices=("int8", "bf16"), default="int8", help="the fast path compared with fp32")
    ap.add_argument("--name", default=None, help="results file stem (default: <precision>_sweep)")
    a = ap.parse_args()
    fast = a.precision
    a.name = a.name or f"{fast}_sweep"
    if a.keep_fp32 is not None:
        from xlir.models.runtime import set_int8_keep_fp32

        set_int8_keep_fp32(a.keep_fp32)

    from xlir.config import DEFAULT_BASE_MODEL
    from xlir.models import load_encoder, model_fingerprint
    from xlir.models.runtime import configure_threads
    from xlir.paths import cache_dir
    from xlir.training import prepare_training_data
    from xlir.training.selection import RetrievalValidation, criterion

    threads = configure_threads()
    folders = a.models or sorted(str(p.parent) for p in (cache_dir() / "experiments" / "recipe").glob("*/model/modules.json"))
    models = {"untuned": DEFAULT_BASE_MODEL} | {Path(f).parent.name if Path(f).name == "model" else Path(f).name: f
                                                for f in folders}
    data = prepare_training_data(["mlqa-r"], seed=0, validation_fraction=0.1)
    val = {p: RetrievalValidation.from_training_data(data, precision=p) for p in ("fp32", fast)}
    rows, seconds = [], {"fp32": 0.0, fast: 0.0}
    base_mo = {}
    for name, spec in models.items():
        model = load_encoder(spec, max_seq_length=128)
        fp = model_fingerprint(spec)
        row = {"model": name}
        for p, v in val.items():
            t0 = time.perf_counter()
            row[p] = v.score(model, fp)  # cached per precision: a rerun encodes nothing
            seconds[p] += time.perf_counter() - t0
            if name == "untuned":
                base_mo[p] = row[p]["val.map.mo"]
            row[p]["val.criterion"] = criterion(row[p], base_mo[p])
        rows.append(row)
        print(json.dumps(row))
    taus = {m: kendall_tau([r["fp32"][m] for r in rows], [r[fast][m] for r in rows]) for m in METRICS}
    best = {p: max(rows, key=lambda r: r[p]["val.criterion"])["model"] for p in ("fp32", fast)}
    largest = {m: max(abs(r[fast][m] - r["fp32"][m]) for r in rows) for m in METRICS}
    out = {"precision": fast, "torch_threads": threads, "validation": val["fp32"].size, "models": rows,
           "kendall_tau": taus, "largest_abs_difference": largest, "best_by_criterion": best, "seconds": seconds}
    RESULTS.mkdir(exist_ok=True)
    if fast == "int8":
        out["keep_fp32"] = list(__import__("xlir.models.runtime", fromlist=["x"]).INT8_KEEP_FP32)
    (RESULTS / f"{a.name}.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [f"# {fast} vs fp32 ordering of trained models (MLQA-R validation ids)", ""]
    if fast == "int8":
        lines += [f"Linear layers left in fp32: {', '.join(out['keep_fp32']) or 'none'}.", ""]
    lines += [f"| model | Mo. fp32 / {fast} | Cr. fp32 / {fast} | Mul. fp32 / {fast} | rank distance fp32 / {fast} "
              f"| criterion fp32 / {fast} |", "|---|---|---|---|---|---|"]
    for r in rows:
        cells = [f"{r['fp32'][m]:.4f} / {r[fast][m]:.4f}" if m != "val.rank_distance"
                 else f"{r['fp32'][m]:.1f} / {r[fast][m]:.1f}" for m in METRICS]
        lines.append(f"| {r['model']} | " + " | ".join(cells) + " |")
    lines += ["", f"Kendall's tau (fp32 order vs {fast} order): " + ", ".join(f"{m.removeprefix('val.')} {t:.2f}"
                                                                           for m, t in taus.items()),
              "Largest |difference| over the models: " + ", ".join(f"{m.removeprefix('val.')} {d:.4f}"
                                                                  for m, d in largest.items()),
              f"Best by the criterion: fp32 {best['fp32']}, {fast} {best[fast]}.",
              f"Scoring time (cached embeddings count as 0): fp32 {seconds['fp32']:.0f} s, {fast} {seconds[fast]:.0f} s."]
    (RESULTS / f"{a.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
