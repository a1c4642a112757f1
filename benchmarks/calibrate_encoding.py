"""How fast this machine encodes right now: one fp32 pass over the MLQA-R validation pool.

The virtual machine these numbers come from runs the same encoding 25% slower at some hours than
at others, so a wall-clock figure (``make run``'s) comes with this pass beside it: the 2,047
validation sentences and 436 questions of the default split, bundled encoder, max length 128,
fp32, nothing cached, no compute slot. Prints one line and appends it to
benchmarks/results/calibration.jsonl with a label.

    python benchmarks/calibrate_encoding.py --label before-make-run
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

RESULTS = Path(__file__).with_name("results")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--label", required=True)
    a = ap.parse_args()
    os.environ["XLIR_COMPUTE_SLOTS"] = "0"  # a measurement beside a running job must not wait for it
    from xlir.config import DEFAULT_BASE_MODEL
    from xlir.models import load_encoder
    from xlir.models.runtime import torch_threads
    from xlir.training import prepare_training_data
    from xlir.training.selection import RetrievalValidation

    validation = RetrievalValidation.from_training_data(prepare_training_data(["mlqa-r"], seed=0, validation_fraction=0.1))
    model = load_encoder(DEFAULT_BASE_MODEL, max_seq_length=128)
    t0 = time.perf_counter()
    validation.embed(model)  # no fingerprint: computed, never read from the cache
    row = {"label": a.label, "at": time.strftime("%Y-%m-%dT%H:%M:%S"), "seconds": round(time.perf_counter() - t0, 1),
           **validation.size, "torch_threads": torch_threads()}
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / "calibration.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row))


if __name__ == "__main__":
    main()
