"""Compute slots: one heavy job per machine at a time, a waiter reuses what the holder encoded."""

import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from xlir.errors import XlirError
from xlir.models.slots import SLOTS_ENV, compute_slot, compute_slots


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XLIR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(SLOTS_ENV, raising=False)
    return tmp_path / "cache"


def _hold_in_other_process(seconds: float) -> subprocess.Popen:
    code = ("import sys, time\nfrom xlir.models.slots import compute_slot\n"
            "with compute_slot('the other process'):\n    print('held', flush=True)\n"
            f"    time.sleep({seconds})\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_waits_for_the_slot_and_nesting_is_free(cache, caplog):
    other = _hold_in_other_process(1.5)
    try:
        with caplog.at_level("INFO", logger="xlir.models.slots"):
            with compute_slot("this test") as waited:
                assert waited >= 0.8
                with compute_slot("nested") as again:  # the same process: no deadlock, no wait
                    assert again == 0.0
        assert "held by: the other process" in caplog.text
    finally:
        other.wait(10)
    with compute_slot("free now") as waited:
        assert waited < 0.5


def test_more_slots_let_work_run_side_by_side_and_zero_turns_them_off(cache, monkeypatch):
    monkeypatch.setenv(SLOTS_ENV, "2")
    other = _hold_in_other_process(1.5)
    try:
        with compute_slot("second slot") as waited:
            assert waited < 0.5
    finally:
        other.wait(10)
    monkeypatch.setenv(SLOTS_ENV, "1")
    other = _hold_in_other_process(1.5)
    try:
        monkeypatch.setenv(SLOTS_ENV, "0")
        assert compute_slots() == 0
        t0 = time.perf_counter()
        with compute_slot("no slots") as waited:
            assert waited == 0.0 and time.perf_counter() - t0 < 0.5
    finally:
        other.wait(10)
    for bad in ("-1", "one"):
        monkeypatch.setenv(SLOTS_ENV, bad)
        with pytest.raises(XlirError, match="non-negative integer"):
            compute_slots()


def test_a_waiting_encoding_reads_what_the_holder_computed_instead_of_encoding_again(cache):
    from xlir.evaluation.encode import cache_key, encode_cached

    class CountingModel:
        calls = 0

        def encode(self, texts, **kw):
            CountingModel.calls += 1
            return np.ones((len(texts), 4), dtype=np.float32)

    texts, key = ["a", "b"], cache_key("fp", ["a", "b"], "query", 32)
    got = {}
    held, release = threading.Event(), threading.Event()

    def holder():  # another worker: takes the slot, writes the cache entry, lets go
        with compute_slot("holder"):
            held.set()
            release.wait(10)
            path = cache / "embeddings" / f"{key}.npy"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, np.full((2, 4), 7, dtype=np.float32))
            path.with_suffix(".json").write_text('{"seconds": 1.0}')

    t = threading.Thread(target=holder)
    t.start()
    held.wait(10)
    waiter = threading.Thread(target=lambda: got.setdefault(
        "r", encode_cached(CountingModel(), "fp", texts, "query", batch_size=2, max_seq_length=32, show_progress=False)))
    waiter.start()
    time.sleep(0.7)
    assert waiter.is_alive()  # waiting for the slot
    release.set()
    t.join(10)
    waiter.join(10)
    assert got["r"].cached and float(got["r"].embeddings[0, 0]) == 7.0 and CountingModel.calls == 0
