"""Encode texts once: embeddings are cached on disk by model fingerprint, texts and options.

Every encoding actually computed (not read from the cache) is appended to a ledger,
``<cache>/embeddings/ledger.jsonl``, so "nothing is encoded twice" is counted, not assumed
(``encodings()``; ``benchmarks/count_encodings.py`` reads it after a ``make run``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from xlir.paths import atomic_write, cache_dir

log = logging.getLogger(__name__)


def cache_key(fingerprint: str, texts: list[str], prompt: str, max_seq_length: int) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([fingerprint, prompt, max_seq_length]).encode())
    for t in texts:
        h.update(t.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


LEDGER = "ledger.jsonl"


def _record(row: dict) -> None:
    path = cache_dir() / "embeddings" / LEDGER
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:  # one short line per write: appends from several processes stay whole
        f.write(json.dumps(row) + "\n")


def encodings(since: float = 0.0, pid: int | None = None) -> list[dict]:
    """The ledger's computed encodings (newest last), those recorded at or after ``since`` (epoch seconds),
    by process ``pid`` when given: the ledger is per machine, so other processes' encodings are in it too."""
    path = cache_dir() / "embeddings" / LEDGER
    if not path.is_file():
        return []
    out = []
    for line in path.read_bytes().splitlines():
        try:
            row = json.loads(line)
        except ValueError:  # a line cut by a crash
            continue
        if row.get("at", 0) >= since and pid in (None, row.get("pid")):
            out.append(row)
    return out


def encode_recorded(model, texts: list[str], prompt: str, *, batch_size: int, max_seq_length: int,
                    fingerprint: str | None = None, key: str | None = None,
                    show_progress: bool = False) -> tuple[np.ndarray, float]:
    """L2-normalised float32 rows of ``texts`` (in their order) and the seconds it took; each distinct
    text is encoded once (pools repeat sentences: DREAM's questions 19%), and the encoding goes to
    the ledger (``fingerprint`` None: a model in training). Every computed encoding comes through here."""
    from xlir.models.slots import compute_slot

    index: dict[str, int] = {}
    inverse = np.fromiter((index.setdefault(t, len(index)) for t in texts), dtype=np.int64, count=len(texts))
    with compute_slot(f"encoding {len(index)} texts (pid {os.getpid()})"):
        t0 = time.perf_counter()
        emb = model.encode(
            list(index), prompt_name=prompt, batch_size=batch_size, show_progress_bar=show_progress,
            convert_to_numpy=True, normalize_embeddings=True,
        ).astype(np.float32)
    emb = emb[inverse] if len(index) < len(texts) else emb
    seconds = time.perf_counter() - t0
    _record({"key": key, "fingerprint": fingerprint, "prompt": prompt, "texts": len(texts), "unique_texts": len(index),
             "max_seq_length": max_seq_length, "seconds": round(seconds, 3), "pid": os.getpid(), "at": time.time()})
    return emb, seconds


class Encoded(NamedTuple):
    embeddings: np.ndarray
    cached: bool
    seconds: float  # time the encoding took when it was computed


def encode_cached(model, fingerprint: str, texts: list[str], prompt: str, *, batch_size: int, max_seq_length: int, show_progress: bool = True) -> Encoded:
    """L2-normalised float32 embeddings of ``texts``, from the cache when already computed.

    ``prompt`` names the model's prompt (``query`` or ``document``), so the prefix comes from
    the model's own settings. ``fingerprint`` names the model as it computes: a quantised model
    passes ``precision_fingerprint(...)``, so int8 and fp32 embeddings never share a cache entry.
    """
    from xlir.models.slots import compute_slot

    path = cache_dir() / "embeddings" / f"{cache_key(fingerprint, texts, prompt, max_seq_length)}.npy"
    hit = _cached(path, len(texts))
    if hit is not None:
        return hit
    with compute_slot(f"encoding {len(texts)} texts for {path.stem} (pid {os.getpid()})"):
        hit = _cached(path, len(texts))  # another process computed it while this one waited
        if hit is not None:
            return hit
        model.max_seq_length = max_seq_length
        emb, seconds = encode_recorded(model, texts, prompt, batch_size=batch_size, max_seq_length=max_seq_length,
                                       fingerprint=fingerprint, key=path.stem, show_progress=show_progress)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: np.save(f, emb))
        meta = {"seconds": seconds, "texts": len(texts), "prompt": prompt, "fingerprint": fingerprint}
        atomic_write(path.with_suffix(".json"), lambda f: f.write(json.dumps(meta).encode()))
    return Encoded(emb, False, seconds)


def _cached(path: Path, rows: int) -> Encoded | None:
    """The cache entry at ``path`` when it is whole (embeddings and metadata readable, ``rows`` rows);
    a torn or unreadable entry (a kill while an older version wrote it) is a miss, recomputed, not an error."""
    meta = path.with_suffix(".json")
    if not (path.exists() and meta.exists()):
        return None
    try:
        seconds = float(json.loads(meta.read_text())["seconds"])
        emb = np.load(path)
    except (OSError, ValueError, KeyError, TypeError, EOFError) as e:
        log.warning("embedding cache entry %s is unreadable (%s); computing it again", path.name, e)
        return None
    if emb.ndim != 2 or emb.shape[0] != rows:
        log.warning("embedding cache entry %s has %s rows for %d texts; computing it again", path.name, emb.shape, rows)
        return None
    return Encoded(emb, True, seconds)
