"""Encode texts once: embeddings are cached on disk by model fingerprint, texts and options."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from typing import NamedTuple

import numpy as np

from xlir.paths import cache_dir


def cache_key(fingerprint: str, texts: list[str], prompt: str, max_seq_length: int) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([fingerprint, prompt, max_seq_length]).encode())
    for t in texts:
        h.update(t.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


class Encoded(NamedTuple):
    embeddings: np.ndarray
    cached: bool
    seconds: float  # time the encoding took when it was computed


def encode_cached(model, fingerprint: str, texts: list[str], prompt: str, *, batch_size: int, max_seq_length: int, show_progress: bool = True) -> Encoded:
    """L2-normalised float32 embeddings of ``texts``, from the cache when already computed.

    ``prompt`` names the model's prompt (``query`` or ``document``), so the prefix comes from
    the model's own settings.
    """
    path = cache_dir() / "embeddings" / f"{cache_key(fingerprint, texts, prompt, max_seq_length)}.npy"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        return Encoded(np.load(path), True, json.loads(meta.read_text())["seconds"])
    t0 = time.perf_counter()
    model.max_seq_length = max_seq_length
    emb = model.encode(
        texts,
        prompt_name=prompt,
        batch_size=batch_size,
        show_progress_bar=show_progress,
        convert_to_numpy=True,
        normalize_embeddings=True,
    ).astype(np.float32)
    seconds = time.perf_counter() - t0
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npy")
    with os.fdopen(fd, "wb") as f:
        np.save(f, emb)
    os.replace(tmp, path)
    meta.write_text(json.dumps({"seconds": seconds, "texts": len(texts), "prompt": prompt, "fingerprint": fingerprint}))
    return Encoded(emb, False, seconds)
