"""How an encoder computes on this machine: torch's thread count, and the fast paths (bf16, int8).

Threads: torch's intra-op pool is set once, where every encoder is loaded (``load_encoder``), to the
cores this process may use, or to ``$XLIR_TORCH_THREADS``; the choice is logged, so a run's log says
what it ran on.

Precision: ``fp32`` is the model as trained and the only precision the gates decide on.

- ``bf16`` runs the encoder's forward under ``torch.autocast`` (CPU, bfloat16): matrix products in
  bf16 on the CPU's own bf16 units (AMX or AVX-512 BF16), layer norms, softmax and the pooled output
  in fp32, weights kept fp32. Only offered where the CPU has those units (``native_bf16``); elsewhere
  bf16 is emulated and slower than fp32, and it is refused. Measured here (benchmarks/bench_precision.py,
  docs/RESULTS.md): 2.7x faster encoding at a cosine to fp32 of 0.99999.
- ``int8`` runs the encoder's linear layers with int8 weights (per-channel scales) and int8 activations
  quantised per batch (torch's dynamic quantisation), except the layers of ``INT8_KEEP_FP32``;
  embeddings, layer norms and softmax stay fp32. Measured here: 1.31x faster encoding, cosine to fp32
  0.996, XQuAD-R Mul. mAP -0.014 to -0.022. Runs on any CPU.

Both are fast paths for exploration and sweeps; the precision is part of every cache and evaluation
key, so their numbers are never mixed with fp32 ones, and the gates refuse them.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import re
import warnings
from typing import Literal

log = logging.getLogger(__name__)

Precision = Literal["fp32", "bf16", "int8"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "int8")
BF16_FLAGS = ("amx_bf16", "avx512_bf16")
"""CPU flags (``/proc/cpuinfo``) of native bf16 arithmetic; one of them makes ``bf16`` worth running."""
THREADS_ENV = "XLIR_TORCH_THREADS"
INT8_KEEP_FP32: tuple[str, ...] = (r"layer\.\d+\.output\.dense$",)
"""Patterns (``re.search``) of linear layer names the int8 path leaves in fp32: the FFN's second
projection, whose GELU inputs carry the outliers that per-tensor activation scales handle worst.
Chosen on the MLQA-R validation ids (benchmarks/results/int8_scheme.md, int8_sweep*.md): it halves
the metric deltas of quantising every linear layer and orders trained models closer to fp32, for
1.3x instead of 1.7x."""


def set_int8_keep_fp32(patterns: str) -> None:
    """Replace ``INT8_KEEP_FP32`` from a comma-separated list ('' = every linear layer in int8): the
    benchmarks' ``--keep-fp32`` option, so other int8 schemes can be measured against the default."""
    global INT8_KEEP_FP32
    INT8_KEEP_FP32 = tuple(x for x in patterns.split(",") if x)


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and ``taskset`` narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def wanted_threads() -> int:
    """``$XLIR_TORCH_THREADS`` when set (a positive integer), else every available core."""
    raw = os.environ.get(THREADS_ENV, "").strip()
    if not raw:
        return available_cores()
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        from xlir.errors import XlirError

        raise XlirError(f"{THREADS_ENV}={raw!r}: expected a positive number of threads")
    return n


def configure_threads() -> int:
    """Set torch's intra-op threads to ``wanted_threads()`` (logged once per process and on a change);
    returns the count."""
    import torch

    global _logged_threads
    n = wanted_threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    if _logged_threads != n:  # once per process, and again when the setting changes
        source = f"{THREADS_ENV}={os.environ[THREADS_ENV]}" if os.environ.get(THREADS_ENV, "").strip() else "all available cores"
        log.info("torch intra-op threads: %d (%s; %d cores available)", n, source, available_cores())
        _logged_threads = n
    return n


_logged_threads: int | None = None


def torch_threads() -> int:
    """torch's intra-op threads now (what an evaluation or a run records)."""
    import torch

    return torch.get_num_threads()


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags (``/proc/cpuinfo``, read once per process; empty where there is none)."""
    try:
        text = open("/proc/cpuinfo", encoding="utf-8").read()
    except OSError:
        return frozenset()
    return frozenset(f for line in text.splitlines() if line.startswith("flags") for f in line.split(":", 1)[1].split())


def native_bf16() -> list[str]:
    """The native bf16 units of this CPU (``BF16_FLAGS`` it has; empty: bf16 would be emulated)."""
    flags = cpu_flags()
    return [f for f in BF16_FLAGS if f in flags]


def check_precision(precision: str) -> str:
    """``precision`` when this machine can run it; ``XlirError`` saying why not otherwise."""
    from xlir.errors import XlirError

    if precision not in PRECISIONS:
        raise XlirError(f"unknown precision {precision!r}; use one of {list(PRECISIONS)}")
    if precision == "bf16" and not native_bf16():
        raise XlirError("precision 'bf16' needs a CPU with native bf16 units (AMX or AVX-512 BF16); this one has "
                        "neither, so bf16 would run slower than fp32: use 'int8' as the fast path here")
    return precision


def resolve_precision(precision: str, device: str = "cpu") -> str:
    """The precision to run: ``auto`` is bf16 on a CPU with native bf16 units (near-exact and 2.7x
    faster there: docs/RESULTS.md) and fp32 elsewhere; the others are checked (``check_precision``).
    The fast paths are CPU paths: on another device bf16 and int8 are refused, ``auto`` is fp32."""
    from xlir.errors import XlirError

    if precision == "auto":
        return "bf16" if device == "cpu" and native_bf16() else "fp32"
    if precision != "fp32" and device != "cpu":
        raise XlirError(f"precision {precision!r} is a CPU fast path; on {device} use fp32 (or auto)")
    return check_precision(precision)


def bf16_autocast():
    """The bf16 fast path's context: matrix products in bf16, norms and softmax in fp32 (``torch.autocast``)."""
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16)


def autocast_bf16(model):
    """``model`` (a SentenceTransformer used for encoding only) with every forward under ``bf16_autocast``
    and its floating outputs returned in fp32; the weights are not touched."""
    import torch

    forward = model.forward

    def forward_bf16(*args, **kwargs):
        with bf16_autocast():
            out = forward(*args, **kwargs)
        return {k: v.float() if isinstance(v, torch.Tensor) and v.dtype == torch.bfloat16 else v
                for k, v in out.items()}

    model.forward = forward_bf16
    return model


@contextlib.contextmanager
def bf16_forward(model):
    """``autocast_bf16`` for the block only: a training model scored in bf16 trains on in fp32."""
    own = vars(model).get("forward")  # an instance-level forward (another wrapper) to put back
    autocast_bf16(model)
    try:
        yield model
    finally:
        if own is None:
            del model.forward
        else:
            model.forward = own


def precision_fingerprint(fingerprint: str, precision: str) -> str:
    """The cache identity of a model at a precision: fp32 keeps the model's own fingerprint."""
    if check_precision(precision) == "fp32":
        return fingerprint
    if precision == "bf16":
        return f"{fingerprint}-bf16"
    scheme = "" if not INT8_KEEP_FP32 else "-" + hashlib.sha1("|".join(INT8_KEEP_FP32).encode()).hexdigest()[:8]
    return f"{fingerprint}-{precision}{scheme}"


def quantize_int8(model, *, inplace: bool = False, layers=None):
    """A copy of ``model`` (a SentenceTransformer) with its ``nn.Linear`` layers dynamically quantised
    to int8 (per-channel weight scales, which gave a higher cosine to fp32 than per-tensor ones at the
    same speed). Unless ``inplace``, ``model`` itself is left untouched, so a training model can be
    scored in int8 and go on training in fp32. ``layers``: module names to quantise (default: every
    ``nn.Linear`` not matched by ``INT8_KEEP_FP32``)."""
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated in favour of torchao, which this lock does not carry;
        # the eager dynamic path still ships with the pinned torch and is what is measured here.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        was_training = model.training
        model.eval()
        try:
            if layers is None:
                layers = [n for n, m in model.named_modules()
                          if isinstance(m, torch.nn.Linear) and not any(re.search(x, n) for x in INT8_KEEP_FP32)]
            spec = {name: per_channel_dynamic_qconfig for name in layers}
            q = quantize_dynamic(model, spec, inplace=inplace)
        finally:
            model.train(was_training)
    q.eval()
    return q


__all__ = [
    "BF16_FLAGS", "PRECISIONS", "Precision", "THREADS_ENV", "autocast_bf16", "available_cores", "bf16_autocast",
    "bf16_forward", "check_precision", "configure_threads", "cpu_flags", "native_bf16", "precision_fingerprint", "quantize_int8",
    "resolve_precision", "set_int8_keep_fp32", "torch_threads", "wanted_threads",
]
