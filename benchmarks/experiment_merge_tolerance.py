"""How far apart must two WiSE-FT merges score on validation to be told apart? (``merge_tolerance``)

For each fine-tuned run (default: the three seeds of the default recipe in the recipe ablation),
the tuned weights (its last checkpoint) and their merge with the base encoder at each lambda of the
grid are scored on the held-out MLQA-R validation ids; per query, the multilingual-pool AP. The
paired difference of each merge against the tuned model gets a bootstrap 95% CI
(``xlir.evaluation.significance.paired_test``) and a standard error (CI width / 3.92). The default
``merge_tolerance`` should sit near that standard error: merges closer than it are a tie.

Writes benchmarks/results/merge_tolerance.json.

    python benchmarks/experiment_merge_tolerance.py [--runs DIR ...] [--grid 0.85,0.7]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

RESULTS = Path(__file__).with_name("results") / "merge_tolerance.json"
SEEDS = ("const-s50-20steps", "const-s50-20steps-seed1", "const-s50-20steps-seed2")


def per_query_mul(validation, model) -> tuple[dict, "object"]:
    import faiss

    from xlir.evaluation.run import score_task
    from xlir.evaluation.significance import per_query_scores

    q, c = validation.embed(model)
    scored = score_task(validation.task, lambda a, b: faiss.pairwise_distances(q[a:b], c, faiss.METRIC_INNER_PRODUCT), "val")
    table = scored.table.assign(query_id=validation.task.queries["query_id"].to_numpy()[scored.table["query"].to_numpy()])
    return scored.metrics, per_query_scores(table, "mul")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="*", help="run folders with checkpoints/checkpoint-N (default: the recipe seeds)")
    ap.add_argument("--grid", default="0.85")
    a = ap.parse_args()

    from xlir.config import DEFAULT_BASE_MODEL
    from xlir.evaluation.significance import paired_test
    from xlir.models import load_encoder
    from xlir.models.runtime import configure_threads
    from xlir.paths import cache_dir
    from xlir.training import prepare_training_data
    from xlir.training.selection import RetrievalValidation, merged_state

    configure_threads()
    runs = [Path(r) for r in a.runs] if a.runs else [cache_dir() / "experiments" / "recipe" / s for s in SEEDS]
    validation = RetrievalValidation.from_training_data(prepare_training_data(["mlqa-r"], seed=0, validation_fraction=0.1))
    base = load_encoder(DEFAULT_BASE_MODEL, max_seq_length=128).state_dict()
    rows = []
    for run in runs:
        ckpt = max((run / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
        model = load_encoder(str(ckpt), max_seq_length=128)
        tuned = {k: v.detach().clone() for k, v in model.state_dict().items()}
        m1, ap1 = per_query_mul(validation, model)
        for lam in (float(x) for x in a.grid.split(",")):
            model.load_state_dict(merged_state(base, tuned, lam))
            m, ap = per_query_mul(validation, model)
            common = ap1.index.intersection(ap.index)
            t = paired_test(ap.loc[common].to_numpy(), ap1.loc[common].to_numpy())
            rows.append({"run": run.name, "checkpoint": ckpt.name, "lambda": lam, "mul_tuned": m1["val.map.mul"],
                         "mul_merged": m["val.map.mul"], "diff": t.diff, "ci": [t.ci_low, t.ci_high],
                         "se": (t.ci_high - t.ci_low) / 3.92, "p_value": t.p_value})
            print(json.dumps(rows[-1]))
    out = {"rows": rows, "median_se": statistics.median(r["se"] for r in rows), "questions": validation.size["questions"]}
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "rows"}))


if __name__ == "__main__":
    main()
