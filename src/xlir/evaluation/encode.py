"""Encode texts once: embeddings are cached on disk by model fingerprint, texts and options."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from xlir.paths import cache_dir


def cache_key(fingerprint: str, texts: list[str], prompt: str, max_seq_length: int) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([fingerprint, prompt, max_seq_length]).encode())
    for t in texts:
        h.update(t.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


def encode_cached(model, fingerprint: str, texts: list[str], prompt: str, *, batch_size: int, max_seq_length: int, show_progress: bool = True) -> tuple[np.ndarray, bool]:
    """L2-normalised float32 embeddings of ``texts``; returns ``(embeddings, was_cached)``.

    ``prompt`` names the model's prompt (``query`` or ``document``), so the prefix comes from
    the model's own settings.
    """
    path = cache_dir() / "embeddings" / f"{cache_key(fingerprint, texts, prompt, max_seq_length)}.npy"
    if path.exists():
        return np.load(path), True
    model.max_seq_length = max_seq_length
    emb = model.encode(
        texts,
        prompt_name=prompt,
        batch_size=batch_size,
        show_progress_bar=show_progress,
        convert_to_numpy=True,
        normalize_embeddings=True,
    ).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npy")
    with os.fdopen(fd, "wb") as f:
        np.save(f, emb)
    os.replace(tmp, path)
    return emb, False


def embeddings_dir() -> Path:
    return cache_dir() / "embeddings"
