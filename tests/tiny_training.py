"""Shared by the tiny-encoder training tests: one torch thread, and a small parallel QA file."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback


@contextmanager
def torch_threads(n: int):
    """``n`` torch threads, also for every encoder loaded meanwhile (``load_encoder`` applies
    ``$XLIR_TORCH_THREADS``); both restored after."""
    from xlir.models.runtime import THREADS_ENV

    before, env = torch.get_num_threads(), os.environ.get(THREADS_ENV)
    os.environ[THREADS_ENV] = str(n)
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        if env is None:
            os.environ.pop(THREADS_ENV, None)
        else:
            os.environ[THREADS_ENV] = env


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The tiny model gains nothing from threads; on a shared 2-core box they only contend."""
    with torch_threads(1):
        yield


def write_parallel_qa(path: Path, ids: int = 40, langs=("en", "de", "es")) -> str:
    """``ids`` parallel ids in 2 or 3 languages; each paragraph holds the answer and two fillers."""
    rows = []
    for i in range(ids):
        for lang in langs[: 2 + i % 2]:
            rows.append(
                {
                    "parallel_id": f"id{i}",
                    "lang": lang,
                    "question": f"{lang} question number {i} about topic {i % 7}?",
                    "answer_sentence": f"{lang} the answer to {i} is {i * 3}.",
                    "paragraph": f"{lang} paragraph {i}",
                    "negatives": [f"{lang} filler {i} one.", f"{lang} filler {i} two."],
                }
            )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


class Kill(TrainerCallback):
    """Simulates a crash right after the checkpoint of ``step`` is on disk."""

    def __init__(self, step):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt(f"killed at step {state.global_step}")
