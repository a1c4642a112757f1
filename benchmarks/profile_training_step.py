"""Where a training step's time goes on the CPU, and what removing padding buys.

One training step of the default recipe (bundled encoder, hybrid batches of 32 MLQA-R triplets,
max length 128, MultipleNegativesRankingLoss at scale 50, AdamW, word embeddings frozen), split into
its phases, each timed on its own over the same batches:

- data: the trainer's own dataloader (the hybrid sampler, then the collator, which tokenises);
- forward: the texts' embeddings and the loss;
- backward;
- optimizer: AdamW's step and zeroing the gradients.

Forward and backward run two ways on the same batches, alternated: as sentence-transformers does
(the anchors in one forward, positives and negatives merged in another, each padded to its longest
text), and length-grouped (``xlir.training.losses``: every text of the step sorted by length and
run in groups, each padded only to its own longest). Both give the same loss and gradients up to
float rounding (checked here). Also reported: real and padded tokens per step, the FLOPs of a step
(3x its forward: the backward costs two forwards), and the fraction of the machine's fp32 peak.

Writes benchmarks/results/training_step.json.

    python benchmarks/profile_training_step.py [--steps 8] [--groups 4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).with_name("results") / "training_step.json"


def forward_flops(model, features_list) -> tuple[float, int, int]:
    """FLOPs of the forwards that embed ``features_list`` as given (padded shapes), real and padded tokens."""
    from xlir.models.limits import encoder_shape, forward_flops_of_batch

    shape = encoder_shape(model)
    flops, real, padded = 0.0, 0, 0
    for f in features_list:
        b, length = f["input_ids"].shape
        flops += forward_flops_of_batch(shape, b, length)
        real += int(f["attention_mask"].sum())
        padded += b * length
    return flops, real, padded


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=8, help="timed steps (after one warm-up step)")
    ap.add_argument("--groups", type=int, default=4, help="length groups of the length-grouped forward")
    ap.add_argument("--output", type=Path, default=RESULTS)
    a = ap.parse_args()

    import torch

    from xlir.config import DEFAULT_BASE_MODEL
    from xlir.models import load_encoder
    from xlir.models.limits import machine_peak
    from xlir.models.runtime import configure_threads
    from xlir.training import TrainConfig, prepare_training_data
    from xlir.training.losses import embed_length_grouped, merged_columns_flops_view
    from xlir.training.trainer import build_trainer, freeze_word_embeddings

    threads = configure_threads()
    cfg = TrainConfig(base_model=DEFAULT_BASE_MODEL, train_datasets=["mlqa-r"], steps=a.steps + 1, length_groups=1)
    data = prepare_training_data(cfg.train_datasets, seed=cfg.seed, validation_fraction=cfg.validation_fraction)
    model = load_encoder(cfg.base_model, max_seq_length=cfg.max_seq_length)
    freeze_word_embeddings(model)
    model.train()
    with tempfile.TemporaryDirectory() as tmp:
        trainer, _ = build_trainer(cfg, data, model, checkpoint_dir=Path(tmp), save_checkpoints=False)
        loader = trainer.get_train_dataloader()
        batches, data_seconds = [], []
        it = iter(loader)
        for _ in range(a.steps + 1):
            t0 = time.perf_counter()
            batches.append(next(it))
            data_seconds.append(time.perf_counter() - t0)
        loss_fn = trainer.loss
        features = [trainer.collect_features(dict(b)) for b in batches]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                                  weight_decay=cfg.weight_decay)

    def st_embed(feats):
        from sentence_transformers.base.losses.merged_forward import embed_columns

        return embed_columns(model, feats)

    def grouped_embed(feats):
        return embed_length_grouped(model, feats, a.groups)

    ways = {"sentence-transformers": st_embed, f"length-grouped ({a.groups})": grouped_embed}
    timings = {w: {"forward": [], "backward": [], "optimizer": []} for w in ways}
    check = {}
    model.eval()  # same loss and gradients both ways: compared without dropout, before any update
    for w, embed in ways.items():
        feats, labels = features[0]
        loss = loss_fn.compute_loss_from_embeddings(embed([dict(f) for f in feats]), labels)
        loss.backward()
        check[w] = (float(loss), {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None})
        optimizer.zero_grad(set_to_none=True)
    model.train()
    for step, (feats, labels) in enumerate(features):
        order = list(ways) if step % 2 == 0 else list(reversed(ways))
        for w in order:
            t0 = time.perf_counter()
            emb = ways[w]([dict(f) for f in feats])  # a forward writes its outputs into the dicts
            loss = loss_fn.compute_loss_from_embeddings(emb, labels)
            t1 = time.perf_counter()
            loss.backward()
            t2 = time.perf_counter()
            if step == 0:  # warm-up (AdamW allocates its state on the first step)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                continue
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            t3 = time.perf_counter()
            timings[w]["forward"].append(t1 - t0)
            timings[w]["backward"].append(t2 - t1)
            timings[w]["optimizer"].append(t3 - t2)

    (loss_a, grads_a), (loss_b, grads_b) = check.values()
    max_grad_diff = max(float((grads_a[n] - grads_b[n]).abs().max()) for n in grads_a)
    max_grad = max(float(g.abs().max()) for g in grads_a.values())

    peak = machine_peak()
    flops_st, flops_grouped, real, padded_st, padded_grouped = [], [], [], [], []
    for feats, _ in features[1:]:
        f, r, p = forward_flops(model, merged_columns_flops_view(feats))
        flops_st.append(3 * f)
        real.append(r)
        padded_st.append(p)
        f2, _, p2 = forward_flops(model, merged_columns_flops_view(feats, groups=a.groups))
        flops_grouped.append(3 * f2)
        padded_grouped.append(p2)
    med = lambda xs: statistics.median(xs)  # noqa: E731
    out = {
        "model": DEFAULT_BASE_MODEL, "batch_size": cfg.batch_size, "max_seq_length": cfg.max_seq_length,
        "steps_timed": a.steps, "torch_threads": threads, "machine": peak,
        "data_seconds_median": med(data_seconds[1:]),
        "real_tokens_per_step": med(real),
        "ways": {},
        "same_loss_without_dropout": {"sentence-transformers": loss_a, "length-grouped": loss_b},
        "max_abs_grad_difference": max_grad_diff, "max_abs_grad": max_grad,
    }
    for w, flops, padded in (("sentence-transformers", flops_st, padded_st),
                             (f"length-grouped ({a.groups})", flops_grouped, padded_grouped)):
        t = {k: med(v) for k, v in timings[w].items()}
        step = out["data_seconds_median"] + sum(t.values())
        out["ways"][w] = {
            "seconds": {"data": out["data_seconds_median"], **t, "step": step},
            "share": {k: v / step for k, v in {"data": out["data_seconds_median"], **t}.items()},
            "padded_tokens_per_step": med(padded),
            "step_gflop": med(flops) / 1e9,
            "fraction_of_fp32_peak": med(flops) / (t["forward"] + t["backward"]) / peak["fp32_peak_flops"],
        }
    st, gr = out["ways"].values()
    out["step_speedup_grouped"] = st["seconds"]["step"] / gr["seconds"]["step"]
    a.output.parent.mkdir(exist_ok=True)
    a.output.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
