"""Model selection: retrieval validation on held-out ids, the criterion, checkpoint choice, WiSE-FT."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from xlir.evaluation.config import EvalConfig
from xlir.errors import XlirError
from xlir.models import load_encoder
from xlir.models.runtime import native_bf16
from xlir.training import TrainConfig, prepare_training_data, train
from xlir.training import selection
from xlir.training.selection import RetrievalValidation, criterion, merged_state

from tiny_training import Kill, one_thread, write_parallel_qa  # noqa: F401 - one_thread is an autouse fixture


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    return write_parallel_qa(tmp_path_factory.mktemp("data") / "qa.jsonl", ids=30)


def config(data_file, out, **kw):
    base = dict(base_model="tiny", train_datasets=[data_file], steps=6, batch_size=4, max_seq_length=32,
                checkpoint_every=2, validation_fraction=0.2, keep_checkpoints=5, output_dir=out)
    return TrainConfig(**{**base, **kw})


def state(model_dir):
    return {k: v.clone() for k, v in load_encoder(str(model_dir)).state_dict().items()}


# ------------------------------------------------------------------ merge


def test_merge_is_exact_at_both_ends_and_linear_between():
    base = {"w": torch.randn(3, 4), "b": torch.randn(4), "ids": torch.arange(4)}
    tuned = {"w": torch.randn(3, 4), "b": torch.randn(4), "ids": torch.arange(4) + 1}
    zero, one, half = merged_state(base, tuned, 0.0), merged_state(base, tuned, 1.0), merged_state(base, tuned, 0.5)
    assert all(torch.equal(zero[k], base[k]) for k in ("w", "b"))
    assert all(torch.equal(one[k], tuned[k]) for k in tuned)
    assert torch.allclose(half["w"], (base["w"] + tuned["w"]) / 2)
    assert torch.equal(half["ids"], tuned["ids"]), "integer buffers are not interpolated"
    with pytest.raises(XlirError, match="differ"):
        merged_state({"w": base["w"]}, tuned, 0.5)
    with pytest.raises(XlirError, match="shape"):
        merged_state({**base, "w": torch.zeros(2)}, tuned, 0.5)


def test_criterion_penalises_only_the_mo_loss_beyond_the_tolerance():
    m = {"val.map.mo": 0.78, "val.map.mul": 0.60}
    assert criterion(m, base_mo=0.78) == pytest.approx(0.60)
    assert criterion(m, base_mo=0.80) == pytest.approx(0.60 - 10 * 0.02)
    assert criterion(m, base_mo=0.80, mo_tolerance=0.02) == pytest.approx(0.60)


# ------------------------------------------------------------------ validation = the evaluation engine


def test_validation_metric_equals_the_evaluation_engine_on_the_same_ids(data_file, monkeypatch, tmp_path):
    data = prepare_training_data([data_file], seed=0, validation_fraction=0.2)
    val = RetrievalValidation.from_training_data(data, max_seq_length=32)
    held = set(data.validation_questions[data_file]["parallel_id"])
    assert {p.split("/", 1)[1] for p in val.task.queries["parallel_id"]} == held
    assert len(val.task.candidates) == 3 * len(data.validation_questions[data_file]), "every paragraph sentence"

    model = load_encoder("tiny", max_seq_length=32)
    ours = val.score(model)

    import xlir.evaluation.run as run

    monkeypatch.setattr(run, "load_dataset", lambda name, split=None: val.dataset)
    monkeypatch.setenv("XLIR_CACHE_DIR", str(tmp_path))
    engine = run.evaluate(EvalConfig(model="tiny", dataset="validation", max_seq_length=32), progress=False).metrics
    assert set(ours) == {f"val.{k}" for k in selection.HEADLINE if ".seen" not in k and ".unseen" not in k}
    for k, v in ours.items():
        assert v == pytest.approx(engine["validation." + k.removeprefix("val.")], abs=1e-9), k


def test_selection_refuses_test_datasets_and_never_reads_them(data_file, monkeypatch, tmp_path):
    with pytest.raises(XlirError, match="test data"):
        RetrievalValidation([("xquad-r", prepare_training_data([data_file]).validation_questions[data_file])])
    assert selection.is_test_source("dream:test") and selection.is_test_source("dream")
    assert not selection.is_test_source("dream:train") and not selection.is_test_source("mlqa-r")
    for test_set in ("xquad-r", "dream:test"):  # nor trained on, whatever the selection
        with pytest.raises(XlirError, match="zero-shot test set"):
            prepare_training_data([test_set])

    import xlir.data.registry as registry

    read = []

    def guarded(name, split=None, languages=None):
        read.append(name)
        raise AssertionError(f"model selection read {name}")

    registry._load.cache_clear()
    monkeypatch.setattr(registry, "_load", guarded)
    result = train(config(data_file, tmp_path / "r", merge_with_base="auto", merge_grid=[0.5, 1.0]), show_progress=False)
    assert read == [] and result.merge_lambda in (0.5, 1.0)


# ------------------------------------------------------------------ checkpoint choice and merge in a run


@pytest.fixture
def scripted(monkeypatch):
    """Replace the retrieval score by a script: the base, then one value per validation call."""
    calls = []

    def install(mul_by_call: list[float], mo: float = 0.5):
        def score(self, model, fingerprint=None):
            i = len(calls)
            calls.append(fingerprint)
            mul = 0.1 if fingerprint is not None else mul_by_call[i - 1]
            return {"val.map.mo": mo, "val.map.cr": 0.3, "val.map.mul": mul, "val.rank_distance": 10.0,
                    "val.r1.mo": 0.4, "val.r10.mul": 0.5}

        monkeypatch.setattr(RetrievalValidation, "score", score)
        return calls

    return install


def test_run_returns_the_checkpoint_with_the_best_validation_criterion(data_file, tmp_path, scripted):
    calls = scripted([0.5, 0.7, 0.6])  # steps 2, 4, 6
    result = train(config(data_file, tmp_path / "r", merge_with_base="none"), show_progress=False)
    assert calls[0] is not None, "the base encoder is scored first, through the embedding cache"
    assert result.selected_step == 4 and result.merge_lambda is None
    assert result.validation["val.map.mul"] == 0.7 and result.validation_base["val.map.mul"] == 0.1
    returned, best, last = (state(result.model_dir), state(tmp_path / "r/checkpoints/checkpoint-4"),
                            state(tmp_path / "r/checkpoints/checkpoint-6"))
    assert all(torch.equal(returned[k], best[k]) for k in returned)
    assert any(not torch.equal(returned[k], last[k]) for k in returned)
    curve = [json.loads(line) for line in (tmp_path / "r/train_log.jsonl").read_text().splitlines()]
    assert [(r["step"], r["eval_retrieval_map_mul"]) for r in curve if "eval_retrieval_map_mul" in r] == [
        (0, 0.1), (2, 0.5), (4, 0.7), (6, 0.6)]
    assert json.loads((tmp_path / "r/selection.json").read_text())["selected_step"] == 4


def test_auto_merge_takes_the_lambda_with_the_best_criterion(data_file, tmp_path, scripted):
    # steps 2, 4, 6, then the merge grid from the top: 0.85 and 0.5 (1.0 is the selected checkpoint)
    scripted([0.5, 0.7, 0.6, 0.65, 0.75])
    cfg = config(data_file, tmp_path / "r", merge_with_base="auto", merge_grid=[0.5, 0.85, 1.0], merge_early_stop=False)
    result = train(cfg, show_progress=False)
    assert result.selected_step == 4 and result.merge_lambda == 0.5
    assert [r["lambda"] for r in result.merge_tried] == [1.0, 0.85, 0.5]
    expected = merged_state(state("tiny"), state(tmp_path / "r/checkpoints/checkpoint-4"), 0.5)
    returned = state(result.model_dir)
    assert all(torch.allclose(returned[k], expected[k], atol=1e-6) for k in returned)


@pytest.mark.parametrize("muls, tried, chosen", [
    ([0.65, 0.75], [1.0, 0.85], 1.0),        # worse at 0.85: stop there (the full grid would take 0.5)
    ([0.72, 0.71], [1.0, 0.85, 0.5], 0.85),  # better at 0.85, worse at 0.5: the whole grid, same choice
    ([0.699, 0.60], [1.0, 0.85, 0.5], 0.85),  # 0.85 within the tolerance of 1.0: the one closer to the base
])
def test_merge_early_stop_walks_down_from_one_and_stops_at_the_first_worse_weight(data_file, tmp_path, scripted,
                                                                                    muls, tried, chosen):
    calls = scripted([0.5, 0.7, 0.6, *muls])
    result = train(config(data_file, tmp_path / "r", merge_with_base="auto", merge_grid=[0.5, 0.85, 1.0]),
                   show_progress=False)
    assert [r["lambda"] for r in result.merge_tried] == tried and result.merge_lambda == chosen
    assert len(calls) == 1 + 3 + len(tried) - 1  # base, steps 2/4/6, the weights below 1.0 scored


def test_int8_validation_scores_like_the_int8_evaluation_and_leaves_the_model_fp32(data_file, monkeypatch, tmp_path):
    monkeypatch.setenv("XLIR_CACHE_DIR", str(tmp_path))
    data = prepare_training_data([data_file], seed=0, validation_fraction=0.2)
    fp32 = RetrievalValidation.from_training_data(data, max_seq_length=32)
    int8 = RetrievalValidation.from_training_data(data, max_seq_length=32, precision="int8")
    model = load_encoder("tiny", max_seq_length=32)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    q8, c8 = int8.embed(model)
    q32, c32 = fp32.embed(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "training weights untouched"
    assert not np.array_equal(c8, c32) and float((c8 * c32).sum(1).mean()) > 0.9

    import xlir.evaluation.run as run

    monkeypatch.setattr(run, "load_dataset", lambda name, split=None: int8.dataset)
    engine = run.evaluate(EvalConfig(model="tiny", dataset="validation", max_seq_length=32, precision="int8"),
                          progress=False).metrics
    for k, v in int8.score_embeddings(q8, c8).items():
        assert v == pytest.approx(engine["validation." + k.removeprefix("val.")], abs=1e-9), k
    # the base's int8 reference goes through the cache under its own key, apart from fp32
    from xlir.evaluation.encode import encodings

    int8.score(model, "fp-of-tiny")
    fp32.score(model, "fp-of-tiny")
    cached = [e["fingerprint"] for e in encodings() if (e["fingerprint"] or "").startswith("fp-of-tiny")]
    assert cached.count("fp-of-tiny") == 2 and len(cached) == 4
    assert all(c.startswith("fp-of-tiny-int8-") for c in cached if c != "fp-of-tiny")


@pytest.mark.skipif(not native_bf16(), reason="this CPU has no native bf16 units (AMX or AVX-512 BF16)")
def test_bf16_validation_is_close_to_fp32_cached_apart_and_leaves_the_model_training_in_fp32(data_file, monkeypatch,
                                                                                              tmp_path):
    monkeypatch.setenv("XLIR_CACHE_DIR", str(tmp_path))
    data = prepare_training_data([data_file], seed=0, validation_fraction=0.2)
    fp32 = RetrievalValidation.from_training_data(data, max_seq_length=32)
    bf16 = RetrievalValidation.from_training_data(data, max_seq_length=32, precision="bf16")
    model = load_encoder("tiny", max_seq_length=32)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    qb, cb = bf16.embed(model)
    q32, c32 = fp32.embed(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()) and model.training
    assert not torch.is_autocast_enabled("cpu") and "forward" not in vars(model)  # training goes on in fp32
    assert cb.dtype == np.float32 and not np.array_equal(cb, c32) and float((cb * c32).sum(1).min()) > 0.999
    from xlir.evaluation.encode import encodings

    bf16.score(model, "fp-of-tiny")
    fp32.score(model, "fp-of-tiny")
    cached = sorted(e["fingerprint"] for e in encodings() if (e["fingerprint"] or "").startswith("fp-of-tiny"))
    assert cached == ["fp-of-tiny", "fp-of-tiny", "fp-of-tiny-bf16", "fp-of-tiny-bf16"]


def test_auto_validation_precision_is_resolved_on_the_machine_and_recorded(data_file, tmp_path, monkeypatch):
    import xlir.models.runtime as runtime
    from xlir.pipeline.params import CompareParams, PipelineParams
    from xlir.pipeline.tasks import validation_precision_of

    assert validation_precision_of(PipelineParams()) == "auto"  # a training run: bf16 only where it is native
    assert validation_precision_of(CompareParams(precision="int8")) == "int8"  # a comparison: its own param
    seen = []
    monkeypatch.setattr(runtime, "cpu_flags", lambda: set())  # a CPU without bf16 units: auto is fp32
    monkeypatch.setattr(RetrievalValidation, "score", lambda self, model, fingerprint=None: seen.append(self.precision) or {
        "val.map.mo": 0.5, "val.map.cr": 0.3, "val.map.mul": 0.2, "val.rank_distance": 10.0})
    result = train(config(data_file, tmp_path / "r", steps=2, validation_precision="auto", merge_with_base="none"),
                   show_progress=False)
    saved = json.loads((Path(result.output_dir) / "train_config.json").read_text())
    assert saved["config"]["validation_precision"] == "auto" and saved["validation_precision"] == "fp32"
    assert seen and set(seen) == {"fp32"}
    # a run started in bf16 and resumed on a machine without bf16 units is refused, not scored in a mix
    cut = tmp_path / "cut"
    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"amx_bf16"})
    with pytest.raises(KeyboardInterrupt):
        train(config(data_file, cut, steps=4, validation_precision="auto", merge_with_base="none"),
              callbacks=[Kill(2)], show_progress=False)
    assert json.loads((cut / "train_config.json").read_text())["validation_precision"] == "bf16"
    monkeypatch.setattr(runtime, "cpu_flags", lambda: set())
    with pytest.raises(XlirError, match="was started with bf16 validation, which this machine cannot run"):
        train(config(data_file, cut, steps=4, validation_precision="auto", merge_with_base="none"), show_progress=False)
    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"amx_bf16"})
    seen.clear()
    resumed = train(config(data_file, cut, steps=4, validation_precision="auto", merge_with_base="none"),
                    show_progress=False)
    assert resumed.resumed_from_step == 2 and set(seen) == {"bf16"}


def test_fixed_lambda_zero_returns_the_base_weights_exactly(data_file, tmp_path):
    result = train(config(data_file, tmp_path / "r", merge_with_base=0.0, select="last", validation_fraction=0.0),
                   show_progress=False)
    base, returned = state("tiny"), state(result.model_dir)
    assert result.merge_lambda == 0.0 and all(torch.equal(base[k], returned[k]) for k in base)


def test_config_rules():
    with pytest.raises(ValueError, match="select=retrieval"):
        TrainConfig(merge_with_base="auto", select="loss")
    with pytest.raises(ValueError, match="validation_fraction"):
        TrainConfig(validation_fraction=0.0, select="retrieval")
    assert TrainConfig(validation_fraction=0.0).select == "last"
    with pytest.raises(ValueError, match="multiple"):
        TrainConfig(checkpoint_every=5, eval_every=2)
    assert TrainConfig(merge_with_base="0.7").merge_with_base == 0.7


def test_early_stopping_on_the_retrieval_criterion(data_file, tmp_path, scripted):
    scripted([0.5, 0.4, 0.3])  # no gain after step 2: patience 1 stops at step 4
    result = train(config(data_file, tmp_path / "r", early_stopping_patience=1, merge_with_base="none"),
                   show_progress=False)
    assert result.stopped_early and result.steps == 4 and result.selected_step == 2


def test_held_out_languages_are_validated_as_unseen_and_their_mo_loss_is_penalised(data_file, tmp_path):
    m = {"val.map.mo": 0.80, "val.map.mul": 0.60, "val.map.mo.unseen": 0.70}
    assert criterion(m, base_mo=0.80) == pytest.approx(0.60)  # no held-out reference: unseen not counted
    assert criterion(m, base_mo=0.80, base_mo_unseen=0.73) == pytest.approx(0.60 - 10 * 0.03)
    assert criterion(m, base_mo=0.80, base_mo_unseen=0.69) == pytest.approx(0.60)

    data = prepare_training_data([data_file], validation_fraction=0.2, holdout_languages=["es"])
    plain = prepare_training_data([data_file], validation_fraction=0.2)
    assert "es" not in data.train.languages and "es" in plain.train.languages
    assert data.validation_questions[data_file].equals(plain.validation_questions[data_file])  # same ids held out

    result = train(config(data_file, tmp_path / "r", holdout_languages=["es"], merge_with_base="auto",
                          merge_grid=[0.5, 1.0], merge_early_stop=False), show_progress=False)
    base, tried = result.validation_base, result.merge_tried
    assert {"val.map.mo.unseen", "val.map.mo.seen"} <= set(base) and all("val.map.mo.unseen" in r for r in tried)
    for r in tried:
        assert r["val.criterion"] == pytest.approx(criterion(r, base["val.map.mo"], 0.0, base["val.map.mo.unseen"]))
    logged = [json.loads(x) for x in (tmp_path / "r" / "train_log.jsonl").read_text().splitlines()]
    assert any("eval_retrieval_map_mo_unseen" in r for r in logged)
    with pytest.raises(ValueError, match="retrieval validation"):
        TrainConfig(holdout_languages=["es"], validation_fraction=0)
