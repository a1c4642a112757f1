"""Recipe ablation: which training recipe keeps monolingual quality and raises the multilingual pool.

Every arm fine-tunes the bundled encoder on MLQA-R (hybrid batches unless the arm says otherwise)
and is scored during training on the held-out MLQA-R validation ids (10 % of the parallel ids,
split seed 0, the same for every arm): Mo./Cr./Mul. mAP and rank distance at each checkpoint,
the selected checkpoint, and the WiSE-FT merge with the base encoder chosen on the same
criterion (xlir.training.selection). Choosing an arm uses only these validation numbers. The
test sets (XQuAD-R, DREAM) are evaluated afterwards with --test, and only reported.

Each arm's record (config, per-checkpoint validation, selection, merge grid, wall time) is
appended to benchmarks/results/recipe_ablation.jsonl; a finished arm is skipped on a rerun
(its run folder under the xlir cache holds the result).

    python benchmarks/experiment_recipe.py --arms today const-s20 const-s50   # named arms below
    python benchmarks/experiment_recipe.py --arm my-arm '{"scale": 50, "steps": 40}'
    python benchmarks/experiment_recipe.py --arms const-s50 --test xquad-r:50 --test dream
    python benchmarks/experiment_recipe.py --arms untuned g8-s50-20steps align1-s50-20steps --test xquad-r:200
    python benchmarks/experiment_recipe.py --table    # markdown table of every recorded arm
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from xlir.config import DEFAULT_BASE_MODEL
from xlir.paths import cache_dir
from xlir.training import TrainConfig, train

RESULTS = Path(__file__).with_name("results")
LOG = RESULTS / "recipe_ablation.jsonl"

BASE = dict(
    base_model=DEFAULT_BASE_MODEL, train_datasets=["mlqa-r"], strategy="hybrid", alpha=0.5, batch_size=32,
    max_seq_length=128, lr=3e-5, weight_decay=0.01, validation_fraction=0.1, checkpoint_every=10,
    keep_checkpoints=1, select="retrieval", merge_with_base="auto", merge_grid=[0.5, 0.7, 0.85, 1.0], seed=0,
    steps=30, align_weight=0.0,  # the ablation's base has no alignment term (its default since this ablation)
)
ALIGN1_20 = dict(lr_schedule="constant", warmup_ratio=0.0, scale=50.0, steps=20, align_weight=1.0)
"""The `make run` recipe before the second round (``align1-s50-20steps``): what its arms change one knob of."""
LONG_BF16 = dict(lr_schedule="constant", warmup_ratio=0.0, scale=50.0, train_precision="bf16", checkpoint_every=50,
                 early_stopping_patience=4)
"""The second round's long runs: bf16 training, validated every 50 steps, stopped after four without improvement."""
ARMS = {  # name -> overrides of BASE
    "today": dict(lr_schedule="linear", warmup_ratio=0.1, scale=20.0),
    "const-s20": dict(lr_schedule="constant", warmup_ratio=0.0, scale=20.0),
    "const-s50": dict(lr_schedule="constant", warmup_ratio=0.0, scale=50.0),
    "const-s100": dict(lr_schedule="constant", warmup_ratio=0.0, scale=100.0),
    "linear-w0-s50": dict(lr_schedule="linear", warmup_ratio=0.0, scale=50.0),
    "const-w10-s50": dict(lr_schedule="constant", warmup_ratio=0.1, scale=50.0),
    "const-s50-20steps-a0.25": dict(lr_schedule="constant", warmup_ratio=0.0, scale=50.0, steps=20, alpha=0.25),
    "const-s50-20steps-a0.75": dict(lr_schedule="constant", warmup_ratio=0.0, scale=50.0, steps=20, alpha=0.75),
    "const-s50-trainemb": dict(lr_schedule="constant", warmup_ratio=0.0, scale=50.0, freeze_word_embeddings=False),
    "const-s50-20steps": dict(lr_schedule="constant", warmup_ratio=0.0, scale=50.0, steps=20),
    "const-s50-100steps": dict(lr_schedule="constant", warmup_ratio=0.0, scale=50.0, steps=100),
    # with length-grouped forwards (same loss, other dropout draws), and the alignment term
    "g8-s50-20steps": dict(lr_schedule="constant", warmup_ratio=0.0, scale=50.0, steps=20),
    "align1-s50-20steps": dict(lr_schedule="constant", warmup_ratio=0.0, scale=50.0, steps=20, align_weight=1.0),
    # the long CPU recipe (#12's "at most ~2 h of training"): the default recipe, 15 times the steps,
    # a checkpoint and a validation every 50 steps, stopped when two validations in a row do not improve
    "long-align1-300steps": dict(lr_schedule="constant", warmup_ratio=0.0, scale=50.0, steps=300, align_weight=1.0,
                                 checkpoint_every=50, early_stopping_patience=2),
    # the same cut to 200 steps: started as the 300-step arm and resumed from its step-100 checkpoint with
    # steps=200 (session time). The learning rate is constant and the sampler does not depend on the step
    # count, so its first 200 steps are those of the 300-step run: the same run, stopped earlier.
    "long-align1-200steps": dict(lr_schedule="constant", warmup_ratio=0.0, scale=50.0, steps=200, align_weight=1.0,
                                 checkpoint_every=50, early_stopping_patience=2),
    # the optimiser's step size and the batch, under the alignment term (not in the list: the two knobs
    # that set how far a CPU-minute of training goes); batch 64 is compared at equal compute (its step 10)
    **{f"align1-s50-20steps-{tag}": {**ALIGN1_20, **extra}
       for tag, extra in (("lr1e-4", {"lr": 1e-4}), ("lr2e-4", {"lr": 2e-4}), ("b64", {"batch_size": 64}),
                          ("lr1e-4-bf16train", {"lr": 1e-4, "train_precision": "bf16"}))},  # validated in bf16 too
    **{f"align1-s50-20steps-lr1e-4-seed{seed}": {**ALIGN1_20, "lr": 1e-4, "seed": seed} for seed in (1, 2)},
    # the alignment term's weight at lr 1e-4 (bf16 training: compared with lr1e-4-bf16train, weight 1)
    **{f"align{w:g}-s50-20steps-lr1e-4-bf16train": {**ALIGN1_20, "align_weight": float(w), "lr": 1e-4,
                                                     "train_precision": "bf16"} for w in (3, 10)},
    # weight 10 under the default recipe (fp32 training), seeds 0-2: against align1-s50-20steps-lr1e-4[-seedN]
    **{f"align10-s50-20steps-lr1e-4{'' if seed == 0 else f'-seed{seed}'}": {**ALIGN1_20, "align_weight": 10.0,
                                                                             "lr": 1e-4, "seed": seed}
       for seed in (0, 1, 2)},
    "align1-s100-20steps": {**ALIGN1_20, "scale": 100.0},
    # the long CPU recipe, second round: what the 20-step arms above chose on validation (lr 1e-4; scale 50 and batch
    # 32 kept; bf16 training, which matched fp32 there at 1.33x the speed), up to 1000 steps, validated every 50 and
    # stopped after four validations without improvement. Stopped by hand after step 150 (below the 3e-5 long arm at
    # every validation, drifting: Mo. down, rank distance up); its log is results/long-align1-lr1e-4-bf16.stopped.*
    "long-align1-lr1e-4-bf16": {**LONG_BF16, "steps": 1000, "align_weight": 1.0, "lr": 1e-4},
    # the same with the alignment weight the 20-step arms chose (10: less drift from the base), up to 600 steps.
    # Stopped by hand after step 100 (0.679, 0.676: below the 3e-5 long arm again, Mo. falling to 0.801); its log is
    # results/long-align10-lr1e-4-bf16.stopped.*. lr 1e-4 wins 20-step runs (after the merge) and loses long ones.
    "long-align10-lr1e-4-bf16": {**LONG_BF16, "steps": 600, "align_weight": 10.0, "lr": 1e-4},
    # so the long recipe keeps the 3e-5 of the first long arm, with alignment weight 10 and bf16 training, 400 steps
    "long-align10-lr3e-5-bf16": {**LONG_BF16, "steps": 400, "align_weight": 10.0, "lr": 3e-5},
    # probes: hi and vi left out of training, validated as unseen languages, every merge weight scored
    **{f"probe-hivi{tag}": dict(lr_schedule="constant", warmup_ratio=0.0, scale=50.0, steps=20, merge_early_stop=False,
                                merge_grid=[0.5, 0.6, 0.7, 0.85, 1.0], holdout_languages=["hi", "vi"], **extra)
       for tag, extra in (("", {}), ("-align1", {"align_weight": 1.0}))},
}


def run_arm(name: str, overrides: dict) -> dict:
    cfg = TrainConfig(**{**BASE, **overrides})
    cfg.output_dir = cache_dir() / "experiments" / "recipe" / name
    t0 = time.perf_counter()
    result = train(cfg, show_progress=False)
    curve = []
    for line in (Path(result.output_dir) / "train_log.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if any(k.startswith("eval_retrieval_") for k in rec):
            curve.append({k: v for k, v in rec.items() if k == "step" or k.startswith("eval_retrieval_")})
    return {
        "arm": name, "overrides": overrides, "config": cfg.hyperparameters(), "seconds": round(time.perf_counter() - t0, 1),
        "train_seconds": result.seconds, "steps": result.steps, "selected_step": result.selected_step,
        "merge_lambda": result.merge_lambda, "validation": result.validation, "validation_base": result.validation_base,
        "merge_tried": result.merge_tried, "curve": curve, "model_dir": result.model_dir,
    }


def models_of(record: dict) -> dict[str, str]:
    """The arm's returned model and, when it was merged, the selected checkpoint before the merge."""
    if record["arm"] == "untuned":
        return {"returned": DEFAULT_BASE_MODEL}
    out = {"returned": record["model_dir"]}
    if record.get("merge_lambda") not in (None, 1.0) and record.get("selected_step"):
        out["unmerged"] = str(Path(record["model_dir"]).parent / "checkpoints" / f"checkpoint-{record['selected_step']}")
    return out


def run_tests(model: str, tests: list[str]) -> dict:
    """Zero-shot test numbers of one model (reported, never used to choose)."""
    from xlir.evaluation.config import EvalConfig
    from xlir.evaluation import evaluate

    out = {}
    for spec in tests:
        dataset, _, per_lang = spec.partition(":")
        cfg = EvalConfig(model=model, dataset=dataset, max_questions_per_lang=int(per_lang) if per_lang else None,
                         max_seq_length=128, train_languages=["ar", "de", "en", "es", "hi", "vi", "zh"])
        r = evaluate(cfg, progress=False)
        keys = ("map.mo", "map.cr", "map.mul", "rank_distance", "map")
        prefix = dataset.replace("-", "_")
        out[spec] = {k: r.metrics[f"{prefix}.{k}"] for k in keys if f"{prefix}.{k}" in r.metrics}
        out[spec]["per_query"] = str(r.files["per_query"])
    return out


def recorded() -> dict[str, dict]:
    if not LOG.exists():
        return {}
    out = {}
    for line in LOG.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            out[rec["arm"]] = {**out.get(rec["arm"], {}), **rec}
    return out


def single_pool(test_metrics: dict) -> bool:
    """A DREAM-like test: one pool, no language pairs, ``map`` its one number (as in xlir.registry.report)."""
    return "map" in test_metrics


def significance(records: dict, comparisons: list) -> dict:
    """Paired randomisation tests on per-query scores (xlir.evaluation.significance), written to a file."""
    import pandas as pd

    from xlir.evaluation.significance import compare

    out = {}
    for a, b, test in comparisons:
        recorded_tests = []
        # TEST_A/TEST_B pairs the queries both tests asked (the pool is the same, so a query's scores are too)
        for arm, arm_test in zip((a, b), test.split("/") if "/" in test else (test, test)):
            name, _, which = arm.partition(":")
            recorded_tests.append(records[name]["test" if not which else f"test_{which}"][arm_test])
        frames = [pd.read_csv(t["per_query"]) for t in recorded_tests]
        settings = ("mul",) if single_pool(recorded_tests[0]) else ("mo", "cr", "mul", "rank_distance")
        out[f"{a} vs {b} ({test})"] = {s: compare(*frames, s).as_dict() for s in settings}
    path = RESULTS / "recipe_significance.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**old, **out}, indent=1) + "\n")
    return out


def table(records: dict[str, dict]) -> str:
    lines = ["| arm | steps | sel. step | lambda | val Mo. | val Cr. | val Mul. | val RD | criterion | base Mo. | train s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in records.items():
        if "validation" not in r:
            continue
        v, b = r["validation"], r["validation_base"]
        lines.append(
            f"| {name} | {r['steps']} | {r['selected_step']} | {r['merge_lambda']} | {v['val.map.mo']:.3f} | "
            f"{v['val.map.cr']:.3f} | {v['val.map.mul']:.3f} | {v['val.rank_distance']:.0f} | {v['val.criterion']:.3f} | "
            f"{b['val.map.mo']:.3f} | {r['train_seconds']:.0f} |"
        )
    return "\n".join(lines)


def curve_table(records: dict[str, dict]) -> str:
    """Validation Mo./Mul. mAP and criterion at every checkpoint (step 0: the base encoder), before any merge."""
    steps = sorted({c["step"] for r in records.values() for c in r.get("curve", [])} | {0})
    lines = ["| arm | " + " | ".join(f"step {s}" for s in steps) + " |", "|---" * (len(steps) + 1) + "|"]
    for name, r in records.items():
        if "curve" not in r:
            continue
        b = r["validation_base"]
        cells = {0: f"{b['val.map.mo']:.3f} / {b['val.map.mul']:.3f}"}
        for c in r["curve"]:
            if c["step"] and "eval_retrieval_criterion" in c:
                cells[c["step"]] = (f"{c['eval_retrieval_map_mo']:.3f} / {c['eval_retrieval_map_mul']:.3f} "
                                    f"({c['eval_retrieval_criterion']:.3f})")
        lines.append(f"| {name} | " + " | ".join(cells.get(s, "") for s in steps) + " |")
    return "\n".join(lines)


def test_table(records: dict[str, dict], test: str) -> str:
    """Test numbers of every arm that has them (reported after the choice, never used for it)."""
    pool_only = any(single_pool(r.get(k, {}).get(test, {})) for r in records.values() for k in ("test", "test_unmerged"))
    lines = ([f"| arm | model | {test} mAP |", "|---|---|---|"] if pool_only else
             [f"| arm | model | {test} Mo. | Cr. | Mul. | rank distance |", "|---|---|---|---|---|---|"])
    for name, r in records.items():
        for key, label in (("test", "returned"), ("test_unmerged", "before the merge")):
            t = r.get(key, {}).get(test)
            if t:
                lam = f" (lambda {r['merge_lambda']:g})" if key == "test" and r.get("merge_lambda") is not None else ""
                cells = ([t["map"]] if pool_only else [t["map.mo"], t["map.cr"], t["map.mul"]])
                lines.append(f"| {name} | {label}{lam} | " + " | ".join(f"{c:.3f}" for c in cells)
                             + ("" if pool_only else f" | {t['rank_distance']:.0f}") + " |")
    return "\n".join(lines)


def unseen_table(records: dict[str, dict]) -> str:
    """Probe arms (languages held out of training): each merge weight's validation Mo. on the languages
    training saw and on those it never saw, Mul., and the criterion that penalises both Mo. losses."""
    lines = ["| arm | held out | lambda | Mo. seen | Mo. unseen | Mul. | rank distance | criterion |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in records.items():
        held = (r.get("config") or {}).get("holdout_languages")
        if not held or "merge_tried" not in r:
            continue
        b = r["validation_base"]
        lines.append(f"| {name} | {','.join(held)} | base | {b['val.map.mo.seen']:.3f} | {b['val.map.mo.unseen']:.3f} | "
                     f"{b['val.map.mul']:.3f} | {b['val.rank_distance']:.0f} | |")
        for t in sorted(r["merge_tried"], key=lambda t: -t["lambda"]):
            mark = " **chosen**" if t["lambda"] == r["merge_lambda"] else ""
            lines.append(f"| {name} | | {t['lambda']:g}{mark} | {t['val.map.mo.seen']:.3f} | {t['val.map.mo.unseen']:.3f} | "
                         f"{t['val.map.mul']:.3f} | {t['val.rank_distance']:.0f} | {t['val.criterion']:.3f} |")
    return "\n".join(lines)


def write_markdown(records: dict[str, dict]) -> Path:
    tests = sorted({t for r in records.values() for k in ("test", "test_unmerged") for t in r.get(k, {})})
    parts = ["## Validation (held-out MLQA-R ids: the only numbers the choice reads)", "", table(records), "",
             "### Validation Mo. / Mul. mAP (criterion) at each checkpoint", "", curve_table(records), ""]
    if any((r.get("config") or {}).get("holdout_languages") for r in records.values()):
        parts += ["## Languages held out of training (probes: what fine-tuning does to languages it never saw)", "",
                  unseen_table(records), ""]
    for t in tests:
        parts += [f"## Test: {t} (zero-shot, reported only)", "", test_table(records, t), ""]
    path = RESULTS / "recipe_ablation.md"
    path.write_text("\n".join(parts))
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arms", nargs="*", default=[], help=f"named arms: {', '.join(ARMS)}")
    ap.add_argument("--arm", nargs=2, action="append", default=[], metavar=("NAME", "JSON"), help="an arm by overrides")
    ap.add_argument("--test", action="append", default=[], help="after training: evaluate on DATASET[:Q_PER_LANG]")
    ap.add_argument("--table", action="store_true", help="print the table of recorded arms")
    ap.add_argument("--compare", nargs=3, action="append", default=[], metavar=("A", "B", "TEST"),
                    help="paired tests of arm A against arm B on a recorded test (arm:unmerged for the unmerged model; "
                         "TEST_A/TEST_B: A's test against B's on the questions both asked)")
    args = ap.parse_args()
    RESULTS.mkdir(exist_ok=True)
    arms = [(a, ARMS.get(a)) for a in args.arms] + [(n, json.loads(j)) for n, j in args.arm]
    for name, overrides in arms:
        rec = recorded().get(name)
        if name == "untuned":
            rec = rec or {"arm": "untuned"}
        elif rec is None or rec.get("overrides") != overrides:
            rec = run_arm(name, overrides)
            with LOG.open("a") as f:
                f.write(json.dumps(rec) + "\n")
            print(f"{name}: {json.dumps(rec['validation'])}", flush=True)
        for which, model in models_of(rec).items():
            key = "test" if which == "returned" else f"test_{which}"
            missing = [t for t in args.test if t not in rec.get(key, {})]
            if missing:
                rec = {**rec, key: {**rec.get(key, {}), **run_tests(model, missing)}}
                with LOG.open("a") as f:
                    f.write(json.dumps({"arm": name, key: rec[key]}) + "\n")
                print(f"{name} {key}: {json.dumps(rec[key])}", flush=True)
    if args.compare:
        print(json.dumps(significance(recorded(), args.compare), indent=1))
    if args.table or not arms:
        print(table(recorded()))
    print(f"written: {write_markdown(recorded())}")


if __name__ == "__main__":
    main()
