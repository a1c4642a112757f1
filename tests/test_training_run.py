"""End-to-end training with the tiny encoder: a run, its folder, resume, early stopping, GradCache."""

import json
import math

import pytest
import torch
from transformers import TrainerCallback

from xlir.errors import XlirError
from xlir.models import load_encoder
from xlir.models.runtime import native_bf16
from xlir.training import TrainConfig, train

from tiny_training import Kill, one_thread, write_parallel_qa  # noqa: F401 - one_thread is an autouse fixture

LANGS = ("en", "de", "es")


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    """40 parallel ids in 2 or 3 languages; paragraphs of three sentences."""
    return write_parallel_qa(tmp_path_factory.mktemp("data") / "qa.jsonl", ids=40, langs=LANGS)


def config(data_file, out, **kw):
    base = dict(
        base_model="tiny",
        train_datasets=[data_file],
        steps=6,
        batch_size=4,
        max_seq_length=48,
        checkpoint_every=2,
        validation_fraction=0.1,
        select="last",  # the validation loss is logged, the last step returned (test_training_selection: the rest)
        output_dir=out,
    )
    return TrainConfig(**{**base, **kw})


def weights(model_dir):
    return {k: v.clone() for k, v in load_encoder(str(model_dir)).state_dict().items()}


def test_tiny_run_writes_a_loadable_model_with_prompts_and_logs(data_file, tmp_path):
    result = train(config(data_file, tmp_path / "run"), show_progress=False)
    assert result.steps == 6 and result.steps_this_run == 6 and not result.stopped_early
    assert math.isfinite(result.final_loss) and math.isfinite(result.validation_loss)
    assert result.pairs == 24 and result.pairs_per_second > 0
    assert result.data_versions == {data_file: result.data_versions[data_file]}

    model = load_encoder(result.model_dir)
    assert model.prompts["query"] == "query: " and model.prompts["document"] == "passage: "
    emb = model.encode(["hello"], prompt_name="query")
    assert emb.shape == (1, 32)

    before, after = weights("tiny"), weights(result.model_dir)
    word = next(k for k in before if "word_embeddings" in k)
    assert torch.equal(before[word], after[word]), "CPU default freezes the word embeddings"
    assert any(not torch.equal(before[k], after[k]) for k in before if "encoder.layer" in k)

    out = tmp_path / "run"
    cfg_json = json.loads((out / "train_config.json").read_text())
    assert cfg_json["hyperparameters"]["strategy"] == "hybrid" and cfg_json["hyperparameters"]["alpha"] == 0.5
    assert cfg_json["frozen_parameters"] == before[word].numel()
    assert cfg_json["prompts"] == {"query": "query: ", "document": "passage: "}
    logged = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "loss" in r] == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in logged if "eval_loss" in r] == [2, 4, 6]

    again = train(config(data_file, tmp_path / "run"), show_progress=False)
    assert again == result, "a finished run returns its saved result"
    with pytest.raises(XlirError, match=r"other settings \(lr: 3e-05 -> 0.001\)"):
        train(config(data_file, tmp_path / "run", lr=1e-3), show_progress=False)


@pytest.mark.parametrize("kill_at", [4])
def test_killed_run_resumes_to_the_same_weights_as_an_uninterrupted_one(data_file, tmp_path, kill_at):
    whole = train(config(data_file, tmp_path / "whole", steps=8), show_progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(config(data_file, tmp_path / "cut", steps=8), callbacks=[Kill(kill_at)], show_progress=False)
    assert not (tmp_path / "cut" / "model").exists()
    resumed = train(config(data_file, tmp_path / "cut", steps=8), show_progress=False)
    assert resumed.resumed_from_step == kill_at and resumed.steps_this_run == 8 - kill_at

    a, b = weights(whole.model_dir), weights(resumed.model_dir)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert resumed.final_loss == whole.final_loss
    steps = [json.loads(x)["step"] for x in (tmp_path / "cut" / "train_log.jsonl").read_text().splitlines()]
    assert [s for s in steps if s] == sorted(s for s in steps if s), "no duplicated log lines after resume"


def test_a_checkpoint_torn_by_a_kill_is_skipped_for_the_one_before_it(data_file, tmp_path, caplog):
    whole = train(config(data_file, tmp_path / "whole", steps=8), show_progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(config(data_file, tmp_path / "cut", steps=8), callbacks=[Kill(6)], show_progress=False)
    state = tmp_path / "cut" / "checkpoints" / "checkpoint-6" / "trainer_state.json"
    state.write_text(state.read_text()[:40])  # the kill came while the trainer state was being written
    with caplog.at_level("WARNING", logger="xlir.training.trainer"):
        resumed = train(config(data_file, tmp_path / "cut", steps=8), show_progress=False)
    assert "skipping checkpoint" in caplog.text and "unreadable trainer state" in caplog.text
    assert resumed.resumed_from_step == 4 and resumed.steps == 8
    a, b = weights(whole.model_dir), weights(resumed.model_dir)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_gradcache_and_early_stopping_run(data_file, tmp_path):
    result = train(
        config(
            data_file,
            tmp_path / "gc",
            steps=3,
            strategy="cross",
            mini_batch_size=2,
            eval_every=1,
            checkpoint_every=1,
            early_stopping_patience=1,
            select="loss",
            lr=5e-3,
        ),
        show_progress=False,
    )
    assert math.isfinite(result.final_loss)
    assert result.best_validation_loss <= result.validation_loss
    assert load_encoder(result.model_dir).prompts["query"] == "query: "


def test_no_resume_starts_afresh_in_the_same_folder(data_file, tmp_path):
    train(config(data_file, tmp_path / "r", steps=2, validation_fraction=0), show_progress=False)
    fresh = train(config(data_file, tmp_path / "r", steps=3, validation_fraction=0, resume=False), show_progress=False)
    assert fresh.steps == 3 and fresh.resumed_from_step is None and fresh.validation_loss is None


def test_cli_trains_and_prints_the_model_folder(data_file, tmp_path):
    import typer
    from typer.testing import CliRunner

    from xlir.training.cli import train_command

    app = typer.Typer()
    app.command("train")(train_command)
    app.command("other")(lambda: None)
    args = ["train", "--base-model", "tiny", "--train-datasets", data_file, "--steps", "2", "--batch-size", "4",
            "--strategy", "mono", "--max-seq-length", "32", "--validation-fraction", "0", "-o", str(tmp_path / "c"),
            "--no-progress"]
    result = CliRunner().invoke(app, args, terminal_width=300)
    assert result.exit_code == 0, result.output
    assert "mono training: 2 steps" in result.output
    assert (tmp_path / "c" / "model" / "modules.json").is_file()
    saved = json.loads((tmp_path / "c" / "train_config.json").read_text())["config"]
    assert saved["strategy"] == "mono" and saved["train_datasets"] == [data_file]


def test_a_folder_written_before_the_alignment_term_counts_as_trained_without_it(data_file, tmp_path):
    out = tmp_path / "old"
    train(config(data_file, out, steps=2, align_weight=0.0), show_progress=False)
    saved = json.loads((out / "train_config.json").read_text())
    del saved["hyperparameters"]["align_weight"]  # as written before the field existed
    (out / "train_config.json").write_text(json.dumps(saved))
    assert train(config(data_file, out, steps=2, align_weight=0.0), show_progress=False).steps == 2
    with pytest.raises(XlirError, match=r"align_weight: 0.0 -> 1.0"):
        train(config(data_file, out, steps=2), show_progress=False)  # today's default is not what it ran with


class _LinearDtypes(TrainerCallback):
    """Records the output dtypes of the training model's linear layers during the training steps."""

    def __init__(self):
        self.seen: set = set()
        self.hooks = []

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if not self.hooks:
            self.hooks = [m.register_forward_hook(lambda _m, _i, out: self.seen.add(out.dtype))
                          for m in model.modules() if isinstance(m, torch.nn.Linear)]

    def on_train_end(self, args, state, control, **kwargs):
        for h in self.hooks:
            h.remove()


@pytest.mark.skipif(not native_bf16(), reason="this CPU has no native bf16 units (AMX or AVX-512 BF16)")
def test_bf16_training_runs_the_forward_in_bf16_and_keeps_fp32_weights(data_file, tmp_path):
    dtypes = _LinearDtypes()
    result = train(config(data_file, tmp_path / "b", steps=2, train_precision="bf16", select="retrieval",
                          merge_grid=[0.5, 1.0], merge_early_stop=False), callbacks=[dtypes], show_progress=False)
    assert dtypes.seen == {torch.bfloat16}, "every training forward's matrix products ran under bf16 autocast"
    assert math.isfinite(result.final_loss)
    assert {v.dtype for v in weights(result.model_dir).values() if v.is_floating_point()} == {torch.float32}
    saved = json.loads((tmp_path / "b" / "train_config.json").read_text())
    assert saved["hyperparameters"]["train_precision"] == "bf16" and saved["validation_precision"] == "bf16"
    assert result.selected_step == 2 and result.merge_lambda in (0.5, 1.0)

    fp32 = _LinearDtypes()
    train(config(data_file, tmp_path / "f", steps=1), callbacks=[fp32], show_progress=False)
    assert fp32.seen == {torch.float32}


def test_bf16_training_is_refused_on_a_cpu_without_bf16_units(data_file, tmp_path, monkeypatch):
    from xlir.models import runtime

    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"avx2"})
    with pytest.raises(XlirError, match="needs a CPU with native bf16 units"):
        train(config(data_file, tmp_path / "n", steps=1, train_precision="bf16"), show_progress=False)
    assert not (tmp_path / "n" / "model").exists()
