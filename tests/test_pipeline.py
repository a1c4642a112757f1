"""xlir.pipeline without Airflow: params as the single source of the DAG Params, variants, links, folders."""

import pytest
from pydantic import ValidationError

from xlir.pipeline import CompareParams, PipelineParams, param_schema, parse_params
from xlir.pipeline import links
from xlir.pipeline.tasks import IngestFailed, check_ingest, compare_variants, run_dir, variant_name


def test_param_schema_has_a_default_title_and_description_for_every_field():
    schema = param_schema()
    assert set(schema) == set(PipelineParams.model_fields)
    for name, s in schema.items():
        assert "default" in s and s["title"] and s["description"], name
    assert schema["strategy"]["enum"] == ["mono", "cross", "hybrid"]
    assert (schema["alpha"]["minimum"], schema["alpha"]["maximum"]) == (0.0, 1.0)


@pytest.mark.parametrize("bad", [{"strategy": "x"}, {"alpha": 2}, {"steps": 0}, {"gate_profile": "nope"},
                                 {"unknown": 1}, {"train_datasets": []}, {"merge_with_base": "2"},
                                 {"merge_with_base": "best"}, {"lr_schedule": "step"}, {"scale": 0}])
def test_pipeline_params_refuse_bad_values(bad):
    with pytest.raises(ValidationError):
        PipelineParams(**bad)


def test_the_trigger_form_checks_the_merge_weight_as_the_params_do():
    schema = param_schema()
    assert schema["merge_with_base"]["pattern"] and schema["merge_with_base"]["default"] == "auto"
    import re

    ok = [v for v in ("auto", "none", "0", "0.7", "1", "1.0", "2", "0.7x", "best")
          if re.fullmatch(schema["merge_with_base"]["pattern"], v)]
    assert ok == ["auto", "none", "0", "0.7", "1", "1.0"]
    from xlir.training import TrainConfig

    assert all(TrainConfig(merge_with_base=v) for v in ok)  # what the form accepts, training accepts


def test_parse_params_ignores_fields_of_other_dags():
    p = parse_params({"strategy": "mono", "strategies": ["mono"]})
    assert p.strategy == "mono"


def test_compare_variants_are_each_strategy_then_each_extra_alpha_once():
    v = compare_variants(CompareParams(alpha=0.5, alphas=[0.5, 0.25]))
    assert [variant_name(x["strategy"], x["alpha"]) for x in v] == ["mono", "cross", "hybrid-a0.5", "hybrid-a0.25"]


def test_compare_params_refuse_alpha_out_of_range():
    with pytest.raises(ValidationError):
        CompareParams(alphas=[1.5])


def test_run_dir_is_a_safe_stable_function_of_the_run_id(tmp_path, monkeypatch):
    monkeypatch.setenv("XLIR_PIPELINE_DIR", str(tmp_path))
    a = run_dir("manual__2026-01-01T00:00:00+00:00")
    assert a == run_dir("manual__2026-01-01T00:00:00+00:00") != run_dir("manual__2026-01-01T00:00:01+00:00")
    assert a.parent == tmp_path and ":" not in a.name and "+" not in a.name


def test_check_ingest_fails_with_the_summary_when_something_was_quarantined():
    with pytest.raises(IngestFailed, match="SUMMARY"):
        check_ingest({"quarantined": [{"version": "v"}], "summary": "SUMMARY", "quarantine": "/q"})
    assert check_ingest({"ingested": ["v1"], "quarantined": []}) == {"ingested": ["v1"]}


def test_links_point_at_the_run_and_the_model_version():
    base = "http://127.0.0.1:5000"
    assert links.run_url({"mlflow_run_id": "abc"}, base) == f"{base}/#/runs/abc"
    assert links.model_version_url({"model_uri": "models:/xlir-encoder/3"}, base) == f"{base}/#/models/xlir-encoder/versions/3"
    assert links.run_url({"x": 1}, base) == "" and links.model_version_url(None, base) == ""
    assert links.run_url({"mlflow_run_id": "abc"}, "") == ""


def test_mlflow_ui_url_prefers_the_ui_variable(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    monkeypatch.delenv("XLIR_MLFLOW_UI_URL", raising=False)
    assert links.mlflow_ui_url() == "http://127.0.0.1:5000"
    monkeypatch.setenv("XLIR_MLFLOW_UI_URL", "http://127.0.0.1:6000/")
    assert links.mlflow_ui_url() == "http://127.0.0.1:6000"


def test_triggering_data_versions_reads_every_event_oldest_first_once():
    from types import SimpleNamespace as Event

    from xlir.pipeline.tasks import triggering_data_versions

    events = {"asset": [Event(timestamp="2026-01-02", extra={"version": "b", "versions": ["a", "b"]}),
                        Event(timestamp="2026-01-01", extra={"version": "a"}),
                        Event(timestamp="2026-01-03", extra={})]}
    assert triggering_data_versions(events) == ["a", "b"]
    assert triggering_data_versions(None) == [] == triggering_data_versions({})


def test_default_params_evaluate_on_xquad_r_and_dream():
    assert PipelineParams().eval_datasets == ["xquad-r", "dream"]


def test_deployment_defaults_come_from_inline_json_or_a_file(monkeypatch, tmp_path):
    from xlir.pipeline.params import configured_defaults

    monkeypatch.setenv("XLIR_PIPELINE_DEFAULTS", '{"steps": 7, "strategies": ["mono"]}')
    assert configured_defaults().steps == 7 and param_schema()["steps"]["default"] == 7
    assert configured_defaults(CompareParams).strategies == ["mono"]
    f = tmp_path / "defaults.yaml"
    f.write_text("base_model: tiny\neval_datasets: [dream]\n")
    monkeypatch.setenv("XLIR_PIPELINE_DEFAULTS", str(f))
    assert (configured_defaults().base_model, configured_defaults().eval_datasets) == ("tiny", ["dream"])


@pytest.mark.parametrize("value, message", [('{"stepz": 7}', "unknown param"), ('{"steps": 0}', "invalid pipeline defaults"),
                                            ("/nonexistent/defaults.yaml", "cannot read"), ('["steps"]', "cannot read"),
                                            ('{"steps": 1', "cannot read")])
def test_bad_deployment_defaults_are_one_clear_error(monkeypatch, value, message):
    from xlir.errors import XlirError
    from xlir.pipeline.params import configured_defaults

    monkeypatch.setenv("XLIR_PIPELINE_DEFAULTS", value)
    with pytest.raises(XlirError, match=message):
        configured_defaults()


def test_training_progress_is_read_from_the_run_folder(tmp_path):
    import json

    from xlir.training.progress import read_progress

    assert read_progress(tmp_path) is None
    (tmp_path / "train_config.json").write_text(json.dumps({"config": {"steps": 20}}))
    assert read_progress(tmp_path) == {"step": 0, "steps": 20, "loss": None, "done": False}
    (tmp_path / "train_log.jsonl").write_text('{"step": 1, "loss": 2.5}\n{"step": 2, "loss": 2.0}\n{"step": 2, "eval_loss": 1.9}\n{"step": 3, "lo')
    assert read_progress(tmp_path) == {"step": 2, "steps": 20, "loss": 2.0, "done": False}
