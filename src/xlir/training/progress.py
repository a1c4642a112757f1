"""How far a training run in a folder has got, read from its files (no torch): for progress displays
in another process (``xlir stack run`` follows a training task of the Airflow stack this way)."""

from __future__ import annotations

import json
from pathlib import Path


def read_progress(output_dir: str | Path) -> dict | None:
    """``{"step", "steps", "loss", "done"}`` of the run in ``output_dir``, or None before it starts."""
    out = Path(output_dir)
    try:
        steps = json.loads((out / "train_config.json").read_text())["config"]["steps"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    step, loss = 0, None
    try:
        with open(out / "train_log.jsonl") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:  # a line being written
                    continue
                step = max(step, int(rec.get("step", 0)))
                loss = rec.get("loss", loss)
    except OSError:
        pass
    return {"step": step, "steps": steps, "loss": loss, "done": (out / "train_result.json").is_file()}
