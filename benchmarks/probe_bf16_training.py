"""Would bf16 training pay on a CPU with bf16 units? One default-recipe step in fp32 and under bf16 autocast.

A lead for issue #12 (a better encoder per CPU-minute), not a recipe: the same batches of the default
recipe (bundled encoder, hybrid batches of 32 MLQA-R triplets, max length 128, length-grouped
forwards, word embeddings frozen, AdamW), each step timed in fp32 and with the forward under
``torch.autocast(cpu, bfloat16)`` (weights and optimizer stay fp32), alternated; plus, on one batch
without dropout, the loss both ways and the cosine between the two gradients. The alignment term's
teacher is left out (it is a forward without gradient, like an encoding).

Writes benchmarks/results/training_step_bf16.json.

    python benchmarks/probe_bf16_training.py [--steps 6]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).with_name("results") / "training_step_bf16.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=6, help="timed steps each way (after one warm-up step)")
    a = ap.parse_args()

    import torch

    from xlir.config import DEFAULT_BASE_MODEL
    from xlir.models import load_encoder
    from xlir.models.runtime import bf16_autocast, check_precision, configure_threads, native_bf16
    from xlir.training import TrainConfig, prepare_training_data
    from xlir.training.losses import embed_length_grouped
    from xlir.training.trainer import build_trainer, freeze_word_embeddings

    check_precision("bf16")  # refuses a CPU without bf16 units, where the answer is known: no
    threads = configure_threads()
    cfg = TrainConfig(base_model=DEFAULT_BASE_MODEL, train_datasets=["mlqa-r"], steps=a.steps + 1, align_weight=0.0)
    data = prepare_training_data(cfg.train_datasets, seed=cfg.seed, validation_fraction=cfg.validation_fraction)
    model = load_encoder(cfg.base_model, max_seq_length=cfg.max_seq_length)
    freeze_word_embeddings(model)
    with tempfile.TemporaryDirectory() as tmp:
        trainer, _ = build_trainer(cfg, data, model, checkpoint_dir=Path(tmp), save_checkpoints=False)
        it = iter(trainer.get_train_dataloader())
        features = [trainer.collect_features(dict(next(it))) for _ in range(a.steps + 1)]
        loss_fn = trainer.loss
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    ways = {"fp32": contextlib.nullcontext, "bf16 autocast": bf16_autocast}

    def loss_of(feats, labels, way):
        with ways[way]():
            emb = embed_length_grouped(model, [dict(f) for f in feats], cfg.length_groups)
            return loss_fn.compute_loss_from_embeddings(emb, labels)

    model.eval()  # the same batch both ways without dropout: loss and gradient agreement
    grads, losses = {}, {}
    for way in ways:
        loss = loss_of(*features[0], way)
        loss.backward()
        losses[way] = float(loss.detach())
        grads[way] = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        optimizer.zero_grad(set_to_none=True)
    cosine = float(torch.nn.functional.cosine_similarity(grads["fp32"], grads["bf16 autocast"], dim=0))
    model.train()
    seconds: dict[str, list[float]] = {w: [] for w in ways}
    for step, (feats, labels) in enumerate(features):
        for way in (list(ways) if step % 2 == 0 else list(reversed(ways))):
            t0 = time.perf_counter()
            loss_of(feats, labels, way).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if step:  # step 0 warms up (AdamW allocates its state)
                seconds[way].append(time.perf_counter() - t0)
    med = {w: statistics.median(v) for w, v in seconds.items()}
    out = {"model": DEFAULT_BASE_MODEL, "batch_size": cfg.batch_size, "max_seq_length": cfg.max_seq_length,
           "length_groups": cfg.length_groups, "torch_threads": threads, "native_bf16": native_bf16(),
           "steps_timed": a.steps, "seconds": seconds, "median_step_seconds": med,
           "speedup_bf16_over_fp32": med["fp32"] / med["bf16 autocast"],
           "loss_without_dropout": losses, "gradient_cosine_bf16_to_fp32": cosine}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
