"""Threads and precision: set once where encoders load; bf16 and int8 labelled fast paths with their own cache keys."""

import numpy as np
import pytest
import torch

from tiny_training import torch_threads
from xlir.evaluation.config import EvalConfig
from xlir.errors import XlirError
from xlir.evaluation import evaluate
from xlir.models import load_encoder
from xlir.models.runtime import (
    THREADS_ENV,
    available_cores,
    check_precision,
    configure_threads,
    native_bf16,
    precision_fingerprint,
    quantize_int8,
    resolve_precision,
    wanted_threads,
)
from xlir.registry.versions import eval_key


def test_threads_default_to_the_available_cores_and_follow_the_setting(monkeypatch, caplog):
    with torch_threads(1):
        monkeypatch.delenv(THREADS_ENV)
        assert wanted_threads() == available_cores() >= 1
        monkeypatch.setenv(THREADS_ENV, "3")
        with caplog.at_level("INFO", logger="xlir.models.runtime"):
            assert configure_threads() == 3 and torch.get_num_threads() == 3
        assert "torch intra-op threads: 3 (XLIR_TORCH_THREADS=3" in caplog.text
        monkeypatch.setenv(THREADS_ENV, "1")
        load_encoder("tiny")  # every encoder load applies the setting
        assert torch.get_num_threads() == 1
        for bad in ("0", "two", "-1"):
            monkeypatch.setenv(THREADS_ENV, bad)
            with pytest.raises(XlirError, match="expected a positive number of threads"):
                configure_threads()


def test_int8_is_a_quantised_copy_close_to_fp32():
    with torch_threads(1):
        model = load_encoder("tiny", max_seq_length=32)
        q = quantize_int8(model)
    quantized = {n for n, m in q.named_modules() if "quantized" in type(m).__module__}
    assert quantized and not any("quantized" in type(m).__module__ for m in model.modules())
    assert not any(n.endswith("layer.0.output.dense") for n in quantized)  # the FFN output stays fp32
    assert any(n.endswith("layer.0.attention.output.dense") for n in quantized)
    texts = ["query: what is the capital of France?", "passage: Paris is the capital of France.", "zwei drei"]
    a = model.encode(texts, normalize_embeddings=True)
    b = q.encode(texts, normalize_embeddings=True)
    cos = (a * b).sum(1)
    assert not np.array_equal(a, b) and cos.min() > 0.9, cos


needs_bf16 = pytest.mark.skipif(not native_bf16(), reason="this CPU has no native bf16 units (AMX or AVX-512 BF16)")


@needs_bf16
def test_bf16_runs_the_forward_under_autocast_close_to_fp32_with_fp32_weights_and_outputs():
    with torch_threads(1):
        model = load_encoder("tiny", max_seq_length=32)
        fast = load_encoder("tiny", max_seq_length=32, precision="bf16")
    assert all(p.dtype == torch.float32 for p in fast.parameters())
    texts = ["query: what is the capital of France?", "passage: Paris is the capital of France.", "zwei drei"]
    seen = []
    linear = next(m for m in fast.modules() if isinstance(m, torch.nn.Linear))
    linear.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    a = model.encode(texts, normalize_embeddings=True)
    b = fast.encode(texts, normalize_embeddings=True)
    assert seen and seen[0] == torch.bfloat16  # the matrix products ran in bf16 ...
    assert b.dtype == np.float32 and not np.array_equal(a, b)  # ... and what comes out is fp32
    assert (a * b).sum(1).min() > 0.999


def test_bf16_is_refused_where_the_cpu_would_emulate_it_and_auto_picks_it_only_where_native(monkeypatch):
    import xlir.models.runtime as runtime

    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"avx2", "fma"})
    with pytest.raises(XlirError, match="needs a CPU with native bf16 units.*use 'int8'"):
        check_precision("bf16")
    with pytest.raises(XlirError, match="native bf16"):
        load_encoder("tiny", precision="bf16")
    assert resolve_precision("auto") == "fp32"  # auto never picks an emulated path
    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"avx512f", "amx_bf16"})
    assert check_precision("bf16") == "bf16" and runtime.native_bf16() == ["amx_bf16"]
    assert resolve_precision("auto") == "bf16" and resolve_precision("int8") == "int8"
    assert resolve_precision("auto", "cuda") == "fp32"  # the fast paths are CPU paths
    with pytest.raises(XlirError, match="'bf16' is a CPU fast path; on cuda use fp32"):
        resolve_precision("bf16", "cuda")


def test_precision_is_part_of_every_key_and_fp32_keys_did_not_change():
    assert precision_fingerprint("abc", "fp32") == "abc" and precision_fingerprint("abc", "int8").startswith("abc-int8-")
    import xlir.models.runtime as runtime

    default = precision_fingerprint("abc", "int8")
    runtime.INT8_KEEP_FP32, kept = (), runtime.INT8_KEEP_FP32
    try:  # another int8 scheme never reads this one's cache
        assert precision_fingerprint("abc", "int8") == "abc-int8" != default
    finally:
        runtime.INT8_KEEP_FP32 = kept
    with pytest.raises(XlirError, match="unknown precision 'fp16'"):
        precision_fingerprint("abc", "fp16")
    cfg = EvalConfig(model="tiny", dataset="xquad-r", max_questions_per_lang=5)
    int8 = cfg.model_copy(update={"precision": "int8"})
    bf16 = cfg.model_copy(update={"precision": "bf16"})
    assert len({eval_key(cfg), eval_key(int8), eval_key(bf16)}) == 3
    assert precision_fingerprint("abc", "bf16") == "abc-bf16"
    # the key of an fp32 evaluation is the one registered versions carried before precision existed
    import hashlib
    import json

    before = {k: getattr(cfg, k) for k in ("dataset", "split", "max_questions_per_lang", "seed", "candidate_text",
                                           "max_seq_length")}
    before["dataset_version"] = None
    assert eval_key(cfg) == hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:12]


def test_int8_evaluation_is_labelled_cached_apart_and_close(tmp_path, monkeypatch):
    monkeypatch.setenv("XLIR_CACHE_DIR", str(tmp_path / "cache"))
    from xlir.evaluation.encode import encodings

    cfg = EvalConfig(model="tiny", dataset="xquad-r", max_questions_per_lang=5, max_seq_length=32)
    with torch_threads(1):
        fp32 = evaluate(cfg, progress=False)
        int8 = evaluate(cfg.model_copy(update={"precision": "int8"}), progress=False)
        again = evaluate(cfg.model_copy(update={"precision": "int8"}), progress=False)
    assert (fp32.info["precision"], int8.info["precision"]) == ("fp32", "int8") and again.info["embeddings_cached"]
    assert fp32.output_dir != int8.output_dir and not int8.info["embeddings_cached"]
    assert int8.info["model_fingerprint"] == fp32.info["model_fingerprint"] and int8.info["torch_threads"] == 1
    assert len(encodings()) == 4  # queries and pool, once per precision; the repeat encoded nothing
    assert int8.metrics.keys() == fp32.metrics.keys() and int8.metrics != fp32.metrics


def test_the_cli_labels_the_fast_path(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from xlir.cli import app

    monkeypatch.setenv("XLIR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv(THREADS_ENV, "1")
    out = CliRunner().invoke(app, ["evaluate", "--model", "tiny", "--max-questions-per-lang", "3", "--max-seq-length", "32",
                                   "--precision", "int8", "-o", str(tmp_path / "e")], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    text = " ".join(out.output.split())  # rich wraps the title
    assert "INT8 FAST PATH (not for gating)" in text and "1 torch threads" in text
    bad = CliRunner().invoke(app, ["evaluate", "--model", "tiny", "--precision", "fp16"])
    assert isinstance(bad.exception, XlirError)  # the entry point prints it as one line, no traceback
    assert str(bad.exception) == "invalid evaluation options: --precision: Input should be 'fp32', 'bf16' or 'int8' (got 'fp16')"


def test_flop_counts_follow_the_formula_and_padding():
    from xlir.models.limits import EncoderShape, forward_flops_of_batch, machine_peak, pass_flops

    e5_small = EncoderShape(layers=12, hidden=384, intermediate=1536)
    assert e5_small.linear_flops_per_token == pytest.approx(42.47e6, rel=1e-3)  # the 42.5 MFLOP
    one = forward_flops_of_batch(e5_small, 1, 10)
    assert one == pytest.approx(10 * 42.467328e6 + 12 * 4 * 100 * 384)
    flops = pass_flops(e5_small, [10, 3, 7], batch_size=2)  # batches (10, 7) padded to 10, then (3)
    assert flops["padded_tokens"] == 23 and flops["tokens"] == 20
    assert flops["computed"] == pytest.approx(forward_flops_of_batch(e5_small, 2, 10) + forward_flops_of_batch(e5_small, 1, 3))
    assert flops["useful"] < flops["computed"]
    peak = machine_peak()
    assert peak["fp32_peak_flops"] == pytest.approx(peak["cores"] * peak["clock_ghz"] * 1e9 * peak["flop_per_cycle"], rel=1e-3)
