"""The hybrid-batch experiment: mono vs cross vs hybrid (and hybrid + in-domain data).

The bundled encoder fine-tuned on MLQA-R with each strategy (same steps, seed, batch size),
each evaluated zero-shot on XQuAD-R (a seeded subset of questions per language, the full
13,014-sentence pool) and DREAM test, next to the untuned encoder; paired significance tests
of hybrid against mono and cross on per-query scores. Finished training runs and embeddings
are cached, so a rerun only redoes what is missing.

Writes benchmarks/results/strategies.json and benchmarks/results/strategies.md.

    python benchmarks/experiment_strategies.py [--steps 100] [--batch-size 32]
        [--eval-questions-per-lang 200] [--no-domain-run]
    # the three strategies under the `make run` recipe before lr 1e-4, scored like its gating evaluation
    python benchmarks/experiment_strategies.py --recipe default-lr3e-5 --steps 20 --eval-max-seq-length 128 \
        --no-domain-run --output benchmarks/results/strategies_default.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from xlir.config import DEFAULT_BASE_MODEL
from xlir.evaluation.config import EvalConfig
from xlir.data import load_dataset
from xlir.evaluation import evaluate
from xlir.evaluation.significance import compare
from xlir.pipeline.params import PIPELINE_TRAIN_DEFAULTS
from xlir.training import TrainConfig, train

RESULTS = Path(__file__).with_name("results")
PIPELINE_RECIPE = {k: v for k, v in PIPELINE_TRAIN_DEFAULTS.items() if k != "steps"}  # steps: --steps
RECIPES = {
    "strategies-2026-11": dict(lr_schedule="linear", warmup_ratio=0.1, scale=20.0, validation_fraction=0.05,
                               select="last", merge_with_base="none"),
    # the default `make run` recipe: TrainConfig's defaults with the pipeline's checkpoints (validation at each)
    "default": PIPELINE_RECIPE,
    # the same before the second recipe round raised the learning rate (results/strategies_default.json)
    "default-lr3e-5": {**PIPELINE_RECIPE, "lr": 3e-5},
}
PAPER = [  # arXiv 2408.10536 Table 1, XQuAD-R mAP and rank distance (XLM-R / LaBSE, batch 100, GPU)
    ("paper XLM-R X-X-mono", 0.792, 0.674, 0.547, 410.2),
    ("paper XLM-R X-Y", 0.755, 0.700, 0.593, 295.4),
    ("paper XLM-R hybrid", 0.798, 0.705, 0.593, 286.6),
    ("paper LaBSE X-X-mono", 0.808, 0.752, 0.652, 261.5),
    ("paper LaBSE X-Y", 0.801, 0.762, 0.679, 225.2),
    ("paper LaBSE hybrid", 0.817, 0.767, 0.682, 221.1),
]


def run_evals(model: str, args, train_langs: list[str]) -> dict:
    out = {}
    for dataset, per_lang in (("xquad-r", args.eval_questions_per_lang), ("dream", None)):
        cfg = EvalConfig(model=model, dataset=dataset, max_questions_per_lang=per_lang, seed=args.seed,
                         max_seq_length=args.eval_max_seq_length, train_languages=train_langs)
        r = evaluate(cfg)
        out[dataset] = {"metrics": r.metrics, "per_query": str(r.files["per_query"]), "output_dir": str(r.output_dir)}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-model", default=DEFAULT_BASE_MODEL)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-questions-per-lang", type=int, default=200)
    ap.add_argument("--eval-max-seq-length", type=int, default=256,
                    help="tokens per text in the evaluation (256: the recorded strategies.json)")
    ap.add_argument("--strategies", default="mono,cross,hybrid")
    ap.add_argument("--no-domain-run", action="store_true")
    ap.add_argument("--recipe", choices=sorted(RECIPES), default="strategies-2026-11",
                    help="strategies-2026-11: the recipe of the table in docs/RESULTS.md (linear decay, warm-up 10%%, "
                         "scale 20, last step); default: TrainConfig's defaults (the validation-chosen recipe)")
    ap.add_argument("--output", type=Path, default=RESULTS / "strategies.json")
    args = ap.parse_args()
    train_langs = load_dataset("mlqa-r").languages
    runs: dict[str, dict] = {"untuned": {"model": args.base_model, "train": None, "eval": run_evals(args.base_model, args, train_langs)}}
    plan = [(s, ["mlqa-r"]) for s in args.strategies.split(",")]
    if not args.no_domain_run:
        plan.append(("hybrid", ["mlqa-r", "dream:train"]))
    for strategy, sources in plan:
        name = strategy if sources == ["mlqa-r"] else f"{strategy}+dream"
        cfg = TrainConfig(base_model=args.base_model, train_datasets=sources, strategy=strategy, alpha=args.alpha,
                          steps=args.steps, batch_size=args.batch_size, max_seq_length=args.max_seq_length, seed=args.seed,
                          **RECIPES[args.recipe])
        t0 = time.perf_counter()
        result = train(cfg)
        print(f"trained {name} in {time.perf_counter() - t0:.0f}s -> {result.model_dir}", flush=True)
        runs[name] = {"model": str(result.model_dir), "train": result.as_dict(), "eval": run_evals(str(result.model_dir), args, train_langs)}
    tests = {}
    if "hybrid" in runs:
        hybrid_pq = pd.read_csv(runs["hybrid"]["eval"]["xquad-r"]["per_query"])
        for other in ("mono", "cross", "untuned"):
            if other in runs:
                other_pq = pd.read_csv(runs[other]["eval"]["xquad-r"]["per_query"])
                tests[f"hybrid vs {other}"] = {s: compare(hybrid_pq, other_pq, s).as_dict() for s in ("mo", "cr", "mul", "rank_distance")}
        if "hybrid+dream" in runs:
            for dataset in ("xquad-r", "dream"):
                a = pd.read_csv(runs["hybrid+dream"]["eval"][dataset]["per_query"])
                b = pd.read_csv(runs["hybrid"]["eval"][dataset]["per_query"])
                tests[f"hybrid+dream vs hybrid ({dataset})"] = {s: compare(a, b, s).as_dict() for s in ("mul",)}
    report = {"args": vars(args) | {"output": str(args.output)}, "train_languages": train_langs, "runs": runs, "significance": tests}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str))
    md = markdown(report)
    args.output.with_suffix(".md").write_text(md)
    print(md)


def markdown(report: dict) -> str:
    rows = ["| model | XQuAD-R Mo. | Cr. | Mul. | rank distance | Mo. unseen | Cr. unseen | Mul. unseen | Mul. R@10 | DREAM mAP | DREAM R@10 |", "|---" * 11 + "|"]
    for name, run in report["runs"].items():
        m, d = run["eval"]["xquad-r"]["metrics"], run["eval"]["dream"]["metrics"]
        rows.append(
            f"| {name} | {m['xquad_r.map.mo']:.3f} | {m['xquad_r.map.cr']:.3f} | {m['xquad_r.map.mul']:.3f} | {m['xquad_r.rank_distance']:.1f} "
            f"| {m['xquad_r.map.mo.unseen']:.3f} | {m['xquad_r.map.cr.unseen']:.3f} | {m['xquad_r.map.mul.unseen']:.3f} | {m['xquad_r.r10.mul']:.3f} "
            f"| {d['dream.map']:.3f} | {d['dream.r10']:.3f} |"
        )
    for name, mo, cr, mul, rd in PAPER:
        rows.append(f"| {name} | {mo:.3f} | {cr:.3f} | {mul:.3f} | {rd:.1f} | | | | | | |")
    sig = ["| comparison | setting | mean A | mean B | A - B | 95% CI | p |", "|---" * 7 + "|"]
    for comp, settings in report["significance"].items():
        for s, t in settings.items():
            sig.append(f"| {comp} | {s} | {t['mean_a']:.4f} | {t['mean_b']:.4f} | {t['diff']:+.4f} | [{t['ci_low']:+.4f}, {t['ci_high']:+.4f}] | {t['p_value']:.4f} |")
    return "\n".join(rows) + "\n\n" + "\n".join(sig) + "\n"


if __name__ == "__main__":
    main()
