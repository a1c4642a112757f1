"""The run report (candidate vs the champion it was gated on) and the baseline's extra evaluations,
against a real MLflow server with made-up evaluation results (the values tell the sides apart)."""

import json
from types import SimpleNamespace

import pytest

from mlflow_server import tracking_uri as uri, unique  # noqa: F401 (uri is a fixture)
from xlir.evaluation.config import EvalConfig
from xlir.registry import Registry, load_gates, track_pipeline_run
from xlir.registry import promotion
from xlir.registry.promotion import gate_and_promote
from xlir.registry.report import render_report, version_report

LANGS = ("de", "en", "es")
XQ = EvalConfig(model="tiny", dataset="xquad-r", max_questions_per_lang=5, max_seq_length=32)
DREAM = EvalConfig(model="tiny", dataset="dream", max_questions_per_lang=5, max_seq_length=32)


def xquad(mul: float, rd: float) -> dict[str, float]:
    m = {"xquad_r.map.mo": mul + 0.3, "xquad_r.map.cr": mul + 0.2, "xquad_r.map.mul": mul, "xquad_r.rank_distance": rd}
    m.update({f"xquad_r.map.mul.{lang}": mul for lang in LANGS})
    return m


def result(cfg: EvalConfig, metrics: dict, tmp_path) -> SimpleNamespace:
    """What ``xlir.evaluation.evaluate`` returns, with made-up metrics."""
    out = tmp_path / unique("eval")
    out.mkdir()
    (out / "metrics.json").write_text("{}")
    return SimpleNamespace(metrics=metrics, output_dir=out,
                           info={"dataset": cfg.dataset, "config": cfg.model_dump(mode="json"),
                                 "dataset_version": f"{cfg.dataset}-v1", "questions": 15, "candidates": 40})


@pytest.fixture
def reg(uri, tmp_path):
    return Registry(uri, unique("enc"), experiment=unique("exp"), download_dir=tmp_path / "downloads")


def fake_evaluator(tmp_path, by_dataset: dict):
    return lambda cfg: result(cfg, by_dataset[cfg.dataset], tmp_path)


def register_candidate(reg, tmp_path, xq: dict, dream: dict, dream_cfg=DREAM) -> int:
    from xlir.models import prepare_model

    pid = unique("pipeline")
    with track_pipeline_run(pid, experiment=reg.experiment) as run:
        run.log_evaluation(result(XQ, xq, tmp_path))
        run.log_evaluation(result(dream_cfg, dream, tmp_path))
        run.log_params({"train.merge_with_base": "auto"})  # what log_training records of a selected, merged run
        run.log_metrics({"train.steps": 30, "train.selected_step": 20, "train.merge_lambda": 0.85,
                         "returned.val.map.mo": 0.811, "returned.val.map.mul": 0.669,
                         "base.val.map.mo": 0.793, "base.val.map.mul": 0.439})
        return reg.register_model(prepare_model("tiny"), run.run_id, pid, xq, XQ, dataset_version="xquad-r-v1")


def test_the_baseline_is_evaluated_on_every_dataset_asked_for(reg, tmp_path):
    version = promotion.ensure_baseline(reg, "tiny", XQ, also_evaluate=(DREAM,),
                                  evaluator=fake_evaluator(tmp_path, {"xquad-r": xquad(0.3, 900.0), "dream": {"dream.map": 0.41}}))
    run = reg.client.get_run(reg.version(version).run_id)
    assert run.data.metrics["dream.map"] == 0.41 and run.data.metrics["xquad_r.map.mul"] == 0.3
    assert run.data.tags["eval.dream.key"] and run.data.tags["eval.xquad_r.key"]


def test_report_compares_the_candidate_with_the_champion_it_was_gated_on(reg, tmp_path):
    old = promotion.ensure_baseline(reg, "tiny", XQ, also_evaluate=(DREAM,),
                              evaluator=fake_evaluator(tmp_path, {"xquad-r": xquad(0.3, 900.0), "dream": {"dream.map": 0.41}}))
    new = register_candidate(reg, tmp_path, xquad(0.5, 400.0), {"dream.map": 0.45})
    gate_and_promote(reg, new, "pipeline-x", load_gates("smoke"))
    rep = version_report(reg, new)
    rows = {r["name"]: r for r in rep["rows"]}
    assert rep["reference_version"] == old and rep["reference_is_baseline"] and rep["champion"] == new
    assert [r["dataset"] for r in rep["rows"]][0] == "xquad_r"  # the gating dataset first
    assert (rows["xquad_r.map.mul"]["candidate"], rows["xquad_r.map.mul"]["reference"]) == (0.5, 0.3)
    assert (rows["xquad_r.rank_distance"]["candidate"], rows["xquad_r.rank_distance"]["reference"]) == (400.0, 900.0)
    assert (rows["dream.map"]["candidate"], rows["dream.map"]["reference"]) == (0.45, 0.41)
    assert rep["decision"]["status"] == "passed"
    text = render_report(rep)
    assert f"candidate v{new} vs v{old} (untuned baseline)" in text and "gate: passed" in text
    assert ("trained model: step 20 of 30, merged with the base at lambda 0.85 (chosen on validation); "
            "held-out validation Mo. 0.793 -> 0.811, Mul. 0.439 -> 0.669") in text
    assert "+0.200 ▲" in text and "-500.0 ▲" in text  # higher mAP and lower rank distance are both better
    # the logged model carries the headline of every evaluation, each with its dataset; so does the description
    model = reg.client.get_logged_model(reg.client.get_model_version(reg.name, str(new)).source.removeprefix("models:/"))
    assert {(m.key, m.dataset_name, m.dataset_digest) for m in model.metrics} == {
        *((f"xquad_r.{k}", "xquad-r", "xquad-r-v1") for k in ("map.mo", "map.cr", "map.mul", "rank_distance")),
        ("dream.map", "dream", "dream-v1")}
    description = reg.client.get_model_version(reg.name, str(new)).description
    assert "| xquad_r | mAP Mul. | 0.500 | 0.300 | +0.200 ▲ |" in description
    assert "| dream | mAP | 0.450 | 0.410 | +0.040 ▲ |" in description
    assert reg.client.get_run(reg.version(new).run_id).data.tags["mlflow.note.content"] == description  # the run's too

    from typer.testing import CliRunner

    from xlir.registry.cli import app

    out = CliRunner().invoke(app, ["report", "--name", reg.name, "--tracking-uri", reg.tracking_uri])
    assert out.exit_code == 0 and out.output.strip() == text  # the newest version by default
    out = CliRunner().invoke(app, ["report", "--version", str(old), "--name", reg.name, "--tracking-uri",
                                   reg.tracking_uri, "--json"])
    assert json.loads(out.output)["decision"] is None  # the baseline was never gated


def test_report_leaves_out_references_from_another_eval_config_and_lists_failed_checks(reg, tmp_path):
    old = promotion.ensure_baseline(reg, "tiny", XQ, also_evaluate=(DREAM,),
                              evaluator=fake_evaluator(tmp_path, {"xquad-r": xquad(0.5, 400.0), "dream": {"dream.map": 0.41}}))
    other = DREAM.model_copy(update={"max_questions_per_lang": 7})
    new = register_candidate(reg, tmp_path, xquad(0.2, 1200.0), {"dream.map": 0.45}, dream_cfg=other)
    gate_and_promote(reg, new, "pipeline-y", load_gates("default"))
    rep = version_report(reg, new)
    rows = {r["name"]: r for r in rep["rows"]}
    assert rows["dream.map"]["reference"] is None  # evaluated on 7 questions vs the champion's 5
    assert rows["xquad_r.map.mul"]["reference"] == 0.5
    assert rep["decision"]["status"] == "rejected" and rep["champion"] == old
    text = render_report(rep)
    assert "gate: rejected" in text and "failed retrieval." in text and "–" in text


@pytest.mark.parametrize("lam, merge, says", [
    (1.0, "auto", "step 20 of 20, not merged (lambda 1, chosen on validation);"),
    (0.7, "0.7", "step 20 of 20, merged with the base at lambda 0.7 (fixed);"),
    (None, "none", "step 20 of 20, not merged;"),
])
def test_report_says_whether_the_trained_model_was_merged(lam, merge, says):
    training = {"steps": 20, "selected_step": 20, "merge_lambda": lam, "merge": merge,
                "validation": {"map.mo": 0.81, "map.mul": 0.67}, "validation_base": {"map.mo": 0.79, "map.mul": 0.44}}
    text = render_report({"version": 2, "reference_version": None, "reference_is_baseline": False, "rows": [],
                          "decision": None, "champion": None, "training": training})
    assert says in text.splitlines()[1]


def test_comparison_charts_draw_language_bars_headline_deltas_and_the_pair_matrix_difference(tmp_path):
    from xlir.registry.charts import CHARTS, pair_matrix, write_comparison_charts

    def full(mul: float) -> dict[str, float]:
        m = xquad(mul, 1000 * (1 - mul))
        m.update({f"xquad_r.map.{x}.{y}": mul + (0.1 if x == y else 0) for x in LANGS for y in LANGS})
        return m

    cand, ref = full(0.5), full(0.3)
    written = write_comparison_charts(cand, ref, "xquad_r", tmp_path, candidate_label="v2", reference_label="v1",
                                      dataset="xquad-r")
    assert {k: p.name for k, p in written.items()} == CHARTS
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written.values())
    assert pair_matrix(cand, "xquad_r", list(LANGS)).loc["de", "de"] == pytest.approx(0.6)
    del ref["xquad_r.map.de.en"]  # a reference without every pair (a made-up champion): no matrix, the rest drawn
    assert set(write_comparison_charts(cand, ref, "xquad_r", tmp_path / "partial", candidate_label="v2",
                                       reference_label="v1", dataset="xquad-r")) == {"languages", "deltas"}
