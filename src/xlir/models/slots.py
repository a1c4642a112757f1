"""Compute slots: heavy work (encoding, training) takes one of this machine's slots, or waits.

Why: every encoding and training step already uses all of the machine's cores (torch threads,
xlir.models.runtime). Two at once on the same cores do not finish sooner; each takes about twice as
long, and both results come late (measured in `make run`: XQuAD-R's evaluation 303 s with DREAM's
beside it, against 241 s for both one after the other). Airflow runs mapped tasks side by side, and
an Airflow pool is a scheduler-wide count that also queues tasks before they start; a slot is per
machine (what the cores are) and is taken only around the work itself, by any process: an Airflow
task, the CLI, a benchmark.

A slot is an exclusive ``flock`` on ``<cache>/locks/compute-<i>.lock``, so a killed holder frees it
at once. ``$XLIR_COMPUTE_SLOTS`` sets the count (default 1; 0 = no slots, work runs at once). Taking
a slot inside one already held by the same process is free (training validates inside its slot).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from xlir.errors import XlirError
from xlir.paths import cache_dir

log = logging.getLogger(__name__)

SLOTS_ENV = "XLIR_COMPUTE_SLOTS"
_held = threading.local()


def compute_slots() -> int:
    """``$XLIR_COMPUTE_SLOTS`` (a non-negative integer), default 1."""
    raw = os.environ.get(SLOTS_ENV, "").strip()
    if not raw:
        return 1
    try:
        n = int(raw)
    except ValueError:
        n = -1
    if n < 0:
        raise XlirError(f"{SLOTS_ENV} must be a non-negative integer (0 = no slots), got {raw!r}")
    return n


def _try_slots(paths: list[Path]) -> tuple[int, Path] | None:
    for path in paths:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return fd, path
    return None


def _holder(paths: list[Path]) -> str:
    notes = []
    for path in paths:
        with contextlib.suppress(OSError, ValueError):
            notes.append(json.loads(path.read_text() or "{}").get("what", "?"))
    return ", ".join(n for n in notes if n) or "?"


@contextlib.contextmanager
def compute_slot(what: str, *, poll_seconds: float = 0.5) -> Iterator[float]:
    """Hold a compute slot of this machine for the block; yields the seconds spent waiting for it."""
    slots = compute_slots()
    if slots == 0 or getattr(_held, "depth", 0) > 0:
        _held.depth = getattr(_held, "depth", 0) + 1
        try:
            yield 0.0
        finally:
            _held.depth -= 1
        return
    folder = cache_dir() / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"compute-{i}.lock" for i in range(slots)]
    t0 = time.perf_counter()
    got = _try_slots(paths)
    if got is None:
        log.info("waiting for a compute slot for %s (held by: %s)", what, _holder(paths))
        while got is None:
            time.sleep(poll_seconds)
            got = _try_slots(paths)
    waited = time.perf_counter() - t0
    fd, path = got
    if waited > 1:
        log.info("compute slot %s taken for %s after waiting %.1f s", path.name, what, waited)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"what": what, "pid": os.getpid(), "since": time.time()}).encode(), 0)
        _held.depth = 1
        yield waited
    finally:
        _held.depth = 0
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


__all__ = ["SLOTS_ENV", "compute_slot", "compute_slots"]
