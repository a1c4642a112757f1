"""Training throughput: xlir's hybrid batch sampler against sentence-transformers' own
``NoDuplicatesBatchSampler``, same model, data, loss, batch size and optimiser, in one process.

Each timed run starts from the same initial weights. Runs alternate (hybrid, baseline, baseline,
hybrid, ...) so drift in a shared machine's load hits both sides alike. Throughput is pairs
(triplets) per second over the steady-state steps: from the end of the first step to the end
of the last, which includes fetching and collating each batch (where a sampler costs time).
Peak memory: the process's resident set sampled every 20 ms during each run (psutil), and
``ru_maxrss`` for the whole process. Also reported: how many baseline batches hold two triplets
of one parallel id (in-batch false negatives the hybrid sampler rules out).

    python benchmarks/bench_training.py --model tiny --steps 20             # seconds
    python benchmarks/bench_training.py --model bundled:multilingual-e5-small --steps 4 --repeats 2

Writes ``benchmarks/results/training.json`` (one entry per model spec, replaced on rerun).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import tempfile
import threading
import time
from pathlib import Path

RESULTS = Path(__file__).with_name("results") / "training.json"


class PeakRss:
    """Peak resident set size of this process while the block runs, sampled in a thread."""

    def __init__(self, every: float = 0.02):
        import psutil

        self.proc, self.every, self.peak = psutil.Process(), every, 0
        self._stop = threading.Event()

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            self._stop.wait(self.every)

    def __enter__(self):
        self.peak = self.proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


class CountingCollator:
    """The trainer's collator, recording each batch's size (attributes pass through)."""

    def __init__(self, inner):
        self.inner, self.sizes, self.padded, self.real = inner, [], [], []

    def __call__(self, features):
        self.sizes.append(len(features))
        batch = self.inner(features)
        self.padded.append(sum(v.numel() for k, v in batch.items() if k.endswith("_input_ids")))
        self.real.append(sum(int(v.sum()) for k, v in batch.items() if k.endswith("_attention_mask")))
        return batch

    def __getattr__(self, name):
        return getattr(self.inner, name)


def step_timer():
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.ends = []

        def on_step_end(self, args, state, control, **kwargs):
            self.ends.append(time.perf_counter())

    return StepTimer()


def one_run(name, cfg, data, model, initial, batch_sampler):
    """Train ``cfg.steps`` steps from ``initial`` weights; steady-state pairs/s and peak RSS."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from xlir.training.trainer import build_trainer

    model.load_state_dict(initial)
    gc.collect()
    with tempfile.TemporaryDirectory() as tmp:
        trainer, _ = build_trainer(
            cfg, data, model, checkpoint_dir=Path(tmp), batch_sampler=batch_sampler, save_checkpoints=False
        )
        trainer.remove_callback(ProgressCallback)
        trainer.remove_callback(PrinterCallback)
        timer = step_timer()
        trainer.add_callback(timer)
        counter = CountingCollator(trainer.data_collator)
        sizes = counter.sizes
        trainer.data_collator = counter
        with PeakRss() as mem:
            t0 = time.perf_counter()
            trainer.train()
            wall = time.perf_counter() - t0
    steps = len(timer.ends)
    steady = timer.ends[-1] - timer.ends[0] if steps > 1 else wall
    steady_pairs = sum(sizes[1:steps]) if steps > 1 else sum(sizes)
    first = 1 if steps > 1 else 0
    padded, real = sum(counter.padded[first:steps]), sum(counter.real[first:steps])
    del trainer
    gc.collect()
    return {
        "sampler": name,
        "steps": steps,
        "pairs": sum(sizes[:steps]),
        "wall_seconds": round(wall, 3),
        "steady_seconds": round(steady, 3),
        "pairs_per_second": round(steady_pairs / steady, 3),
        "seconds_per_step": round(steady / max(steps - 1, 1), 3),
        "padded_tokens_per_step": round(padded / max(steps - first, 1), 1),
        "real_tokens_per_step": round(real / max(steps - first, 1), 1),
        "padded_tokens_per_second": round(padded / steady, 1),
        "peak_rss_mb": round(mem.peak / 2**20, 1),
    }


def token_stats(model, cfg, data, batches=100):
    """Mean padded / real tokens per batch over the first ``batches`` batches of each sampler.

    Padding goes to the longest text of a batch, so batches in one language (half the hybrid
    ones) pad less than mixed ones: part of any throughput gap is data, not sampler overhead.
    """
    import torch
    from sentence_transformers.base.sampler import NoDuplicatesBatchSampler

    from xlir.training.samplers import HybridBatchSampler

    t = data.train
    dataset = t.to_dataset()
    samplers = {
        "hybrid": HybridBatchSampler(dataset, cfg.batch_size, table=t, strategy="hybrid", alpha=cfg.alpha, seed=cfg.seed),
        "no_duplicates": NoDuplicatesBatchSampler(
            dataset, cfg.batch_size, drop_last=False, generator=torch.Generator(), seed=cfg.seed
        ),
    }
    tok = model.tokenizer
    prompts = {"anchor": model.prompts["query"], "positive": model.prompts["document"], "negative": model.prompts["document"]}
    out = {}
    for name, sampler in samplers.items():
        padded = real = n = 0
        for rows in sampler:
            for col, prompt in prompts.items():
                texts = [prompt + getattr(t, col)[r] for r in rows]
                enc = tok(texts, padding=True, truncation=True, max_length=cfg.max_seq_length, return_tensors="pt")
                padded += enc["input_ids"].numel()
                real += int(enc["attention_mask"].sum())
            n += 1
            if n >= batches:
                break
        out[name] = {"padded_tokens_per_batch": round(padded / n, 1), "real_tokens_per_batch": round(real / n, 1), "batches": n}
    return out


def duplicate_share(table, dataset, batch_size, seed, batches):
    """Share of NoDuplicatesBatchSampler batches with two triplets of one parallel id."""
    import torch
    from sentence_transformers.base.sampler import NoDuplicatesBatchSampler

    s = NoDuplicatesBatchSampler(dataset, batch_size, drop_last=False, generator=torch.Generator(), seed=seed)
    dup = n = 0
    for rows in s:
        pids = table.pid[rows]
        dup += len(set(pids.tolist())) < len(rows)
        n += 1
        if n >= batches:
            break
    return round(dup / max(n, 1), 3), n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="bundled:multilingual-e5-small")
    ap.add_argument("--datasets", default="mlqa-r", help="comma-separated training sources")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2, help="runs per sampler, alternated")
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--output", type=Path, default=RESULTS)
    a = ap.parse_args()

    import torch
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    from xlir.models import load_encoder
    from xlir.training import TrainConfig
    from xlir.training.data import prepare_training_data
    from xlir.training.trainer import freeze_word_embeddings

    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = TrainConfig(
        base_model=a.model,
        train_datasets=a.datasets,
        steps=a.steps,
        batch_size=a.batch_size,
        max_seq_length=a.max_seq_length,
        alpha=a.alpha,
        seed=a.seed,
        validation_fraction=0.0,
        warmup_ratio=0.0,
    )
    t0 = time.perf_counter()
    data = prepare_training_data(cfg.train_datasets, seed=cfg.seed, validation_fraction=0.0)
    data_seconds = time.perf_counter() - t0
    model = load_encoder(cfg.base_model, max_seq_length=cfg.max_seq_length)
    model.model_card_data.local_files_only = True
    cuda = torch.cuda.is_available()
    frozen = 0 if cuda else freeze_word_embeddings(model)
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}

    t0 = time.perf_counter()
    from xlir.training.samplers import HybridBatchSampler

    probe = HybridBatchSampler(None, cfg.batch_size, table=data.train, strategy="hybrid", alpha=cfg.alpha, seed=cfg.seed)
    plans = [probe.plan(b) for b in range(200)]
    plan_ms = (time.perf_counter() - t0) / 200 * 1e3

    sides = {"hybrid": None, "no_duplicates": BatchSamplers.NO_DUPLICATES}
    runs = []
    for r in range(a.repeats):
        order = list(sides) if r % 2 == 0 else list(sides)[::-1]
        for name in order:
            res = one_run(name, cfg, data, model, initial, sides[name])
            res["repeat"] = r
            runs.append(res)
            print(json.dumps(res), flush=True)

    def med(name, key):
        return statistics.median(x[key] for x in runs if x["sampler"] == name)

    hybrid, base = med("hybrid", "pairs_per_second"), med("no_duplicates", "pairs_per_second")
    tokens = token_stats(model, cfg, data)
    dup, dup_n = duplicate_share(data.train, data.train.to_dataset(), cfg.batch_size, cfg.seed, 200)
    entry = {
        "model": a.model,
        "datasets": cfg.train_datasets,
        "device": torch.cuda.get_device_name(0) if cuda else f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)",
        "steps_per_run": a.steps,
        "batch_size": a.batch_size,
        "max_seq_length": a.max_seq_length,
        "repeats": a.repeats,
        "frozen_word_embedding_parameters": frozen,
        "train_triplets": len(data.train),
        "data_prepare_seconds": round(data_seconds, 3),
        "hybrid_plan_ms_per_batch": round(plan_ms, 3),
        "hybrid_mono_share_first_200": round(sum(p.kind == "mono" for p in plans) / len(plans), 3),
        "hybrid_pairs_per_second_median": hybrid,
        "no_duplicates_pairs_per_second_median": base,
        "ratio_hybrid_over_no_duplicates": round(hybrid / base, 4),
        "peak_rss_mb": {"hybrid": med("hybrid", "peak_rss_mb"), "no_duplicates": med("no_duplicates", "peak_rss_mb")},
        "process_ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "no_duplicates_batches_with_repeated_parallel_id": {"share": dup, "batches": dup_n},
        "tokens_per_batch": tokens,
        "ratio_padded_tokens_per_second": round(
            med("hybrid", "padded_tokens_per_second") / med("no_duplicates", "padded_tokens_per_second"), 4
        ),
        "runs": runs,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    out = a.output
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        results = json.loads(out.read_text())
    except (OSError, ValueError):
        results = {}
    results[f"{a.model} @ {'cuda' if cuda else 'cpu'}"] = entry
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in entry.items() if k != "runs"}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
