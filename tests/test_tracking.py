"""Tracking against a real MLflow server: run identity, params, and one real tiny pipeline end to end
(train, evaluate, baseline, register, gate with a re-evaluated champion, model card)."""

import json

import pytest

from mlflow_server import tracking_uri as uri, unique  # noqa: F401 (uri is a fixture)
from tiny_training import one_thread  # noqa: F401 - an autouse fixture
from xlir.evaluation.config import EvalConfig
from xlir.registry import Registry, TrackingError, load_gates, track_pipeline_run
from xlir.registry import promotion

LANGS = ("en", "de", "es")




def test_one_run_per_pipeline_run_reopened_by_id_with_children_by_name(uri):
    exp = unique("exp")
    with track_pipeline_run("dag-1", experiment=exp) as run:
        with run.child("hybrid") as hybrid:
            pass
        with run.child("mono") as mono:
            pass
    with track_pipeline_run("dag-1", experiment=exp) as again, again.child("hybrid") as hybrid_again:
        assert (again.run_id, hybrid_again.run_id) == (run.run_id, hybrid.run_id)
    assert mono.run_id not in (run.run_id, hybrid.run_id)
    assert hybrid.run.data.tags["mlflow.parentRunId"] == run.run_id
    with track_pipeline_run("dag-2", experiment=exp) as other:
        assert other.run_id != run.run_id
    with pytest.raises(RuntimeError), track_pipeline_run("dag-3", experiment=exp) as failing:
        raise RuntimeError("task failed")
    assert failing.run.info.status == "FAILED"
    with track_pipeline_run("dag-3", experiment=exp, finish=False) as retried:
        assert retried.run_id == failing.run_id and retried.run.info.status == "RUNNING"


def test_a_changed_param_value_is_refused_and_a_repeat_is_a_no_op(uri):
    with track_pipeline_run("dag-p", experiment=unique("exp")) as run:
        run.log_params({"train": {"alpha": 0.5, "languages": ["en", "de"]}})
        run.log_params({"train.alpha": 0.5})
        with pytest.raises(TrackingError, match=r"already has other values for \['train.alpha'\]"):
            run.log_params({"train.alpha": 0.6})
        assert run.run.data.params["train.languages"] == '["en", "de"]'
    with pytest.raises(TrackingError, match="bad pipeline_run_id"):
        with track_pipeline_run("it's", experiment="x"):
            pass


def _data_file(tmp_path):
    path = tmp_path / "qa.jsonl"
    rows = []
    for i in range(30):
        for lang in LANGS[: 2 + i % 2]:
            rows.append({"parallel_id": f"id{i}", "lang": lang, "question": f"{lang} question {i} about {i % 7}?",
                         "answer_sentence": f"{lang} the answer to {i} is {i * 3}.", "paragraph": f"{lang} paragraph {i}",
                         "negatives": [f"{lang} filler {i} one.", f"{lang} filler {i} two."]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_task_on_changed_code_is_recorded_not_refused(uri, monkeypatch):
    """A retry after a deploy (or an edited checkout) reopens the run on other code: the run keeps the
    code it started with as params and records the change as tags."""
    from xlir.registry import tracking

    exp = unique("exp")
    monkeypatch.setattr(tracking, "code_version", lambda: {"code.git_sha": "aaa", "code.git_dirty": "false"})
    with track_pipeline_run("dag-code", experiment=exp) as run:
        pass
    monkeypatch.setattr(tracking, "code_version", lambda: {"code.git_sha": "aaa", "code.git_dirty": "true"})
    with track_pipeline_run("dag-code", experiment=exp) as again:
        assert again.run_id == run.run_id
    data = again.run.data
    assert data.params["code.git_dirty"] == "false" and data.tags["code.changed"] == "true"
    assert data.tags["code.changed.git_dirty"] == "true" and "code.changed.git_sha" not in data.tags


def test_a_real_tiny_pipeline_is_tracked_registered_and_gated(uri, tmp_path, monkeypatch):
    import mlflow.artifacts
    import mlflow.sentence_transformers

    from xlir.evaluation import evaluate
    from xlir.evaluation.encode import encodings

    monkeypatch.setenv("XLIR_CACHE_DIR", str(tmp_path / "cache"))  # a fresh cache: every encoding is counted
    from xlir.training import TrainConfig, train
    from xlir.validation import ValidationReport

    reg = Registry(uri, unique("enc"), experiment=unique("exp"), download_dir=tmp_path / "downloads")
    pid = "scheduled__2026-01-01"
    base_eval = EvalConfig(model="tiny", dataset="xquad-r", max_questions_per_lang=5, max_seq_length=32,
                           output_dir=tmp_path / "eval-base")
    champion = promotion.ensure_baseline(reg, "tiny", base_eval)  # a real evaluation of the untuned base encoder
    assert champion == 1

    data = _data_file(tmp_path)
    train_cfg = TrainConfig(base_model="tiny", train_datasets=[str(data)], steps=4, batch_size=4, max_seq_length=32,
                            checkpoint_every=2, validation_fraction=0.1, merge_with_base="auto", merge_grid=[0.5, 1.0],
                            output_dir=tmp_path / "train")
    cand_eval = base_eval.model_copy(update={"seed": 1, "output_dir": tmp_path / "eval-cand", "train_languages": list(LANGS)})
    with track_pipeline_run(pid, experiment=reg.experiment, run_name="xlir") as run:
        run.log_validation_report(ValidationReport(passed=True, suite="qa-contract", suite_version=1, files=[str(data)], rows=75))
        with run.child("hybrid") as child:
            child.log_config(train=train_cfg, evaluation=cand_eval)
            trained = train(train_cfg, show_progress=False)
            child.log_training(trained)
            result = evaluate(cand_eval.model_copy(update={"model": trained.model_dir}), progress=False)
            child.log_evaluation(result)
            assert child.log_training(trained)["curve_points"] == 0  # a retried task logs nothing twice
            child.log_evaluation(result)
            version = reg.register_model(trained.model_dir, child.run_id, pid, result.metrics, cand_eval,
                                         dataset_version=result.info["dataset_version"])
    assert version == 2

    # params, metrics, curves and artifacts of the run
    r = reg.client.get_run(child.run_id)
    p = r.data.params
    assert p["train.strategy"] == "hybrid" and p["train.alpha"] == "0.5" and p["base_model"] == "tiny"
    assert p["eval.xquad_r.seed"] == "1" and p["eval.xquad_r.dataset_version"] == result.info["dataset_version"]
    assert any(k.startswith("data.version.") for k in p) and json.loads(p["data.languages"]) == sorted(LANGS)
    assert set(result.metrics) <= set(r.data.metrics)
    assert reg.client.get_run(run.run_id).data.params["code.git_sha"]
    loss = reg.client.get_metric_history(child.run_id, "train.loss")
    assert sorted(m.step for m in loss) == list(range(1, 5))
    assert len(reg.client.get_metric_history(child.run_id, "xquad_r.map.mul")) == 1
    val_curve = reg.client.get_metric_history(child.run_id, "val.map.mul")  # retrieval validation, step 0 = base
    assert sorted(m.step for m in val_curve) == [0, 2, 4]
    assert r.data.metrics["train.merge_lambda"] in (0.5, 1.0) and r.data.metrics["train.selected_step"] in (2, 4)
    assert {"returned.val.map.mo", "base.val.map.mul", "val.rank_distance"} <= set(r.data.metrics)
    files = {f.path for f in reg.client.list_artifacts(child.run_id, "evaluation/xquad_r")}
    assert {"evaluation/xquad_r/map_matrix.csv", "evaluation/xquad_r/map_matrix.png", "evaluation/xquad_r/per_language.md",
            "evaluation/xquad_r/run.trec.gz"} <= files
    assert {f.path for f in reg.client.list_artifacts(child.run_id, "training")} >= {"training/train_log.jsonl"}
    report = json.loads(mlflow.artifacts.load_text(f"runs:/{run.run_id}/validation/report.json"))
    assert report["passed"] is True and report["suite"] == "qa-contract"

    # the gate: candidate on seed 1, champion on seed 0 -> the champion is re-evaluated for real
    outcome = promotion.gate_and_promote(reg, version, pid, load_gates("default"))
    d = outcome.decision
    assert d.reference["reevaluated"] and d.reference["differs"] == {"seed": (0, 1)}
    assert not outcome.promoted and {"retrieval.floor_mul", "retrieval.floor_mo", "retrieval.floor_cr"} <= set(d.failed)
    assert reg.champion().version == 1 and reg.version(2).tags["gate.status"] == "rejected"
    card = mlflow.artifacts.load_text(f"runs:/{child.run_id}/model_card.md")
    assert "rejected by the gates" in card and "hybrid (alpha 0.5" in card and "re-evaluated" in card
    assert "training languages: de, en, es" in card
    assert "| returned checkpoint | step " in card and "chosen on the validation criterion" in card
    assert "held-out validation (training-side ids)" in card
    # the comparison charts against the re-evaluated champion: every language pair known on both sides
    assert {f.path for f in reg.client.list_artifacts(child.run_id, "comparison")} == {
        "comparison/mul_map_by_language.png", "comparison/headline_deltas.png", "comparison/map_matrix_delta.png"}

    # encodings counted: base on xquad-r (2: queries, pool); training validation: the base (2), steps 2
    # and 4 (4), the merge at 0.5 (2; 1.0 is step 4's); the candidate (2); the champion's re-evaluation
    # from its registered copy (2). Nothing twice, and deciding again encodes nothing.
    done = encodings()
    keys = [e["key"] for e in done if e["key"]]
    assert len(done) == 14 and len(keys) == len(set(keys)), done
    again = promotion.decide(reg, version, load_gates("default"))
    assert again.reference["reused"] and len(encodings()) == 14

    # the champion still serves by alias
    model = mlflow.sentence_transformers.load_model(f"models:/{reg.name}@champion")
    assert model.encode(["hello"]).shape == (1, 32)
