"""The limit on record: FLOPs of one pass over each evaluation pool, this machine's fp32 peak, the
measured time, and the fraction of the peak reached (``xlir.models.limits`` has the formulas).

Each pool is encoded once in fp32 by the bundled encoder at the pipeline's max length, exactly as an
evaluation encodes it (``SentenceTransformer.encode``: sorted by length, batches of 64, each padded
to its longest text), timed in this process; its FLOPs are counted from the same token lengths, as
computed (with that padding) and useful (without). The training step's figures come from
benchmarks/results/training_step.json (profile_training_step.py) when it exists.

Writes benchmarks/results/limit.json and limit.md.

    python benchmarks/bench_limit.py [--max-seq-length 128] [--sample 0]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

RESULTS = Path(__file__).with_name("results")


def pools(questions_per_lang: int) -> dict[str, tuple[list[str], str]]:
    from xlir.data import load_dataset
    from xlir.evaluation.task import build_task
    from xlir.training import prepare_training_data
    from xlir.training.selection import RetrievalValidation

    out = {}
    for name, split in (("xquad-r", None), ("dream", "test")):
        task = build_task(load_dataset(name, split=split), questions_per_lang, 0)
        out[f"{name} pool"] = (task.candidate_texts("sentence"), "document")
        out[f"{name} questions ({questions_per_lang}/lang)"] = (task.queries["question"].tolist(), "query")
    val = RetrievalValidation.from_training_data(prepare_training_data(["mlqa-r"], seed=0, validation_fraction=0.1))
    out["mlqa-r validation pool"] = (val.task.candidate_texts("sentence"), "document")
    out["mlqa-r validation questions"] = (val.task.queries["question"].tolist(), "query")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--questions-per-lang", type=int, default=50)
    ap.add_argument("--sample", type=int, default=0, help="encode only the first N texts of each pool (0: all)")
    a = ap.parse_args()

    from xlir.config import DEFAULT_BASE_MODEL
    from xlir.models import load_encoder
    from xlir.models.limits import encoder_shape, machine_peak, pass_flops
    from xlir.models.runtime import configure_threads

    threads = configure_threads()
    peak = machine_peak()
    model = load_encoder(DEFAULT_BASE_MODEL, max_seq_length=a.max_seq_length)
    shape = encoder_shape(model)
    rows = []
    for name, (texts, prompt) in pools(a.questions_per_lang).items():
        texts = texts[: a.sample] if a.sample else texts
        prefix = model.prompts[prompt]
        lengths = [min(len(ids), a.max_seq_length)
                   for ids in model.tokenizer([prefix + t for t in texts], truncation=False)["input_ids"]]
        flops = pass_flops(shape, lengths, a.batch_size)
        t0 = time.perf_counter()
        model.encode(texts, prompt_name=prompt, batch_size=a.batch_size, normalize_embeddings=True)
        seconds = time.perf_counter() - t0
        rows.append({"pool": name, "texts": len(texts), "tokens": flops["tokens"], "padded_tokens": flops["padded_tokens"],
                     "tflop_computed": flops["computed"] / 1e12, "tflop_useful": flops["useful"] / 1e12,
                     "seconds": seconds, "gflop_per_s": flops["computed"] / seconds / 1e9,
                     "fraction_of_peak": flops["computed"] / seconds / peak["fp32_peak_flops"]})
        print(json.dumps(rows[-1]))
    out = {"model": DEFAULT_BASE_MODEL, "max_seq_length": a.max_seq_length, "batch_size": a.batch_size,
           "torch_threads": threads, "machine": peak, "linear_mflop_per_token": shape.linear_flops_per_token / 1e6,
           "pools": rows}
    step_file = RESULTS / "training_step.json"
    if step_file.is_file():
        step = json.loads(step_file.read_text())
        out["training_step"] = {w: {"gflop": v["step_gflop"], "seconds": v["seconds"]["step"],
                                    "fraction_of_peak_forward_backward": v["fraction_of_fp32_peak"]}
                                for w, v in step["ways"].items()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "limit.json").write_text(json.dumps(out, indent=2) + "\n")
    m = peak
    lines = [
        "# The limit on record", "",
        f"Machine: {m['cores']} cores x {m['clock_ghz']} GHz x {m['flop_per_cycle']} FLOP/cycle ({m['capability']}) = "
        f"{m['fp32_peak_flops'] / 1e9:.0f} GFLOP/s fp32 peak; {threads} torch threads. Encoder: "
        f"{out['linear_mflop_per_token']:.1f} MFLOP per token in its linear layers, plus attention.", "",
        "| pool | texts | tokens | padded tokens | TFLOP (computed) | TFLOP (useful) | seconds | GFLOP/s | of peak |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['pool']} | {r['texts']} | {r['tokens']:.0f} | {r['padded_tokens']:.0f} | {r['tflop_computed']:.2f} | "
                     f"{r['tflop_useful']:.2f} | {r['seconds']:.1f} | {r['gflop_per_s']:.0f} | {r['fraction_of_peak']:.1%} |")
    for w, v in out.get("training_step", {}).items():
        lines.append(f"\nTraining step ({w}): {v['gflop']:.0f} GFLOP in {v['seconds']:.2f} s; forward + backward at "
                     f"{v['fraction_of_peak_forward_backward']:.1%} of peak.")
    (RESULTS / "limit.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
