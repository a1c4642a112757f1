"""xlir.pipeline without Airflow: params as the single source of the DAG Params, variants, links, folders."""

import pytest
from pydantic import ValidationError

from xlir.pipeline import CompareParams, PipelineParams, param_schema, parse_params
from xlir.pipeline import links
from xlir.pipeline.tasks import IngestFailed, check_ingest, compare_variants, run_dir, variant_name
from xlir.training import TrainConfig


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
    from xlir.pipeline.lineage import asset_events_by_version

    events["asset"][0] = Event(timestamp="2026-01-02", source_dag_id="xlir_ingest", source_run_id="scheduled__1",
                               extra={"versions": ["a", "b"], "mlflow_run_ids": {"b": "run-b"}})
    by_version = asset_events_by_version(events)  # what the training run records of the event behind each version
    assert by_version["b"] == {"source_dag_id": "xlir_ingest", "source_run_id": "scheduled__1",
                               "timestamp": "2026-01-02", "mlflow_run_id": "run-b"}
    assert by_version["a"]["timestamp"] == "2026-01-01" and by_version["a"]["mlflow_run_id"] is None


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


def test_training_and_evaluation_knobs_have_one_definition():
    import inspect

    from xlir.evaluation.cli import evaluate_command
    from xlir.evaluation.config import EvalConfig
    from xlir.pipeline.params import (EVAL_PARAMS, PIPELINE_EVAL_DEFAULTS, PIPELINE_TRAIN_DEFAULTS, TRAIN_NOT_PARAMS,
                                      TRAIN_PARAMS)
    from xlir.training import TrainConfig
    from xlir.training.cli import train_command

    # every TrainConfig field is a pipeline param or is set by the pipeline for a stated reason
    assert set(TRAIN_PARAMS) | set(TRAIN_NOT_PARAMS) == set(TrainConfig.model_fields)
    assert not set(TRAIN_PARAMS) & set(TRAIN_NOT_PARAMS)
    # and an option of `xlir train`; every EvalConfig field an option of `xlir evaluate`
    cli_name = {"output_dir": "output"}
    assert {cli_name.get(n, n) for n in TrainConfig.model_fields} <= set(inspect.signature(train_command).parameters)
    assert {cli_name.get(n, n) for n in EvalConfig.model_fields} <= set(inspect.signature(evaluate_command).parameters)
    # the param is the config's field: type, bounds, title, description; the default too unless stated
    for source, names, defaults in ((TrainConfig, {n: n for n in TRAIN_PARAMS}, PIPELINE_TRAIN_DEFAULTS),
                                    (EvalConfig, EVAL_PARAMS, PIPELINE_EVAL_DEFAULTS)):
        for src, param in names.items():
            a, b = source.model_fields[src], PipelineParams.model_fields[param]
            assert (a.annotation, a.metadata, a.title, a.description) == (b.annotation, b.metadata, b.title,
                                                                            b.description), param
            want = defaults[src] if src in defaults else a.get_default(call_default_factory=True)
            assert b.get_default(call_default_factory=True) == want, param


def test_a_dag_run_can_set_every_training_knob_and_the_form_groups_them_in_sections():
    p = PipelineParams(weight_decay=0.05, scale=20, warmup_ratio=0.1, mini_batch_size=8, align_weight=0.0,
                       length_groups=4, merge_with_base="0.7", languages="en,de")
    cfg = p.train_config(output_dir="/tmp/x")
    assert (cfg.weight_decay, cfg.scale, cfg.warmup_ratio, cfg.mini_batch_size, cfg.length_groups) == (0.05, 20, 0.1, 8, 4)
    assert cfg.merge_with_base == 0.7 and cfg.languages == ["en", "de"]
    assert PipelineParams(validation_fraction=0).train_config().merge_with_base == "none"
    # the learning rate goes with the budget: 1e-4 for the pipeline's 20 steps, 3e-5 for `xlir train`'s 100
    assert (PipelineParams().train_config().lr, TrainConfig().lr) == (1e-4, 3e-5)
    with pytest.raises(ValidationError, match="mini_batch_size"):  # TrainConfig's cross-field rules, at trigger time
        PipelineParams(align_weight=2.0, mini_batch_size=8)
    assert PipelineParams(mini_batch_size=8).train_config().align_weight == 0.0  # GradCache: no alignment term
    sections = {name: s.get("section") for name, s in param_schema().items()}
    assert set(sections.values()) == {"Model", "Data", "Training", "Model selection", "Evaluation", "Gates and registry"}
    assert sections["scale"] == "Training" and sections["eval_questions_per_lang"] == "Evaluation"


def test_the_cli_and_a_dag_run_with_the_same_settings_share_the_evaluation_key():
    from xlir.evaluation.cli import eval_config_from_options
    from xlir.pipeline.tasks import eval_config
    from xlir.registry.versions import eval_key

    dag = eval_config(PipelineParams(), "xquad-r", "some/model")
    cli = eval_config_from_options({"model": "some/model", "dataset": "xquad-r", "max_questions_per_lang": 200})
    assert eval_key(dag) == eval_key(cli)
    # the training seed does not move the gating questions; the evaluation seed does
    assert eval_key(eval_config(PipelineParams(seed=3), "xquad-r", "m")) == eval_key(dag)
    assert eval_key(eval_config(PipelineParams(eval_seed=3), "xquad-r", "m")) != eval_key(dag)


# ------------------------------------------------------------------ who decides what is trained and promoted (issue 13)

import json  # noqa: E402
from pathlib import Path  # noqa: E402

from xlir.errors import XlirError  # noqa: E402
from xlir.pipeline.params import PolicyError, deployment_policy, promotion_violations  # noqa: E402

GOOD_VERSION = "0123456789abcdef"
FIXTURES = Path(__file__).parent / "fixtures" / "validation"


@pytest.fixture
def deployment(monkeypatch, tmp_path):
    """A deployment with no settings of its own (the built-in policy), data roots under tmp_path/roots."""
    monkeypatch.delenv("XLIR_PIPELINE_DEFAULTS", raising=False)
    monkeypatch.delenv("XLIR_GATES_FILE", raising=False)
    root = tmp_path / "roots" / "a"
    root.mkdir(parents=True)
    monkeypatch.setenv("XLIR_DATA_ROOTS", f"{root}:{tmp_path / 'roots' / 'b'}")
    monkeypatch.setenv("XLIR_STORE_DIR", str(tmp_path / "store"))
    (tmp_path / "store").mkdir()
    return root


@pytest.mark.parametrize("bad", ["../x", "../../etc", "/etc/passwd", "0123456789abcde", "0123456789ABCDEF",
                                 "0123456789abcdef/..", "0123456789abcdef\n"])
def test_data_version_must_be_a_store_version_never_a_path(bad):
    import re

    with pytest.raises(ValidationError, match="data_version"):
        PipelineParams(data_version=bad)
    assert not re.fullmatch(param_schema()["data_version"]["pattern"], bad)  # the trigger form refuses it too
    assert PipelineParams(data_version=GOOD_VERSION).data_version == GOOD_VERSION


# gate-bypass attempts by a promoting run's trigger conf (each one refused)
BYPASSES = [
    ({"gate_profile": "smoke"}, "retrieval.min_gain_mul 0.0 is looser than 0.005"),
    ({"gate_overrides": {"retrieval.min_gain_mul": -1.0}}, "min_gain_mul -1.0 is looser"),
    ({"gate_overrides": {"retrieval.floor_mul": None}}, "floor_mul is switched off"),
    ({"gate_overrides": {"retrieval.tolerance_mo": 0.5}}, "tolerance_mo 0.5 is looser"),
    ({"gate_overrides": {"bias.spread_ceiling": None, "bias.max_spread_increase": 1.0}}, "spread_ceiling is switched off"),
    ({"gate_overrides": {"bias.spread_measure": "std"}}, "spread_measure 'std' is not 'range'"),
    ({"gate_overrides": {"dataset": "mlqa-r"}}, "dataset 'mlqa-r' is not 'xquad-r'"),
    ({"gate_overrides": {"on_eval_mismatch": "reevaluate"}, "_deployment": {"gate_overrides": {"on_eval_mismatch": "refuse"}}},
     "on_eval_mismatch 'reevaluate' is looser"),
    ({"gate_profile": "strict", "gate_overrides": {"retrieval.floor_mul": 0.3}}, "loosen profile 'strict'"),
    ({"eval_questions_per_lang": 1}, "eval_questions_per_lang 1 is below the deployment's floor 200"),
    ({"eval_questions_per_lang": 199}, "below the deployment's floor 200"),
    ({"eval_seed": 7}, "eval_seed 7 is not the deployment's 0"),
    ({"eval_max_seq_length": 16}, "eval_max_seq_length 16"),
    ({"eval_candidate_text": "sentence+paragraph"}, "eval_candidate_text"),
    ({"eval_datasets": ["dream"]}, "lack the gating dataset 'xquad-r'"),
]


@pytest.mark.parametrize("conf, message", BYPASSES, ids=[str(i) for i in range(len(BYPASSES))])
def test_a_promoting_run_may_not_loosen_the_deployments_gates_or_shrink_its_gating_evaluation(deployment, monkeypatch,
                                                                                               conf, message):
    from xlir.pipeline.params import check_promotion_policy

    conf = dict(conf)
    if "_deployment" in conf:
        monkeypatch.setenv("XLIR_PIPELINE_DEFAULTS", json.dumps(conf.pop("_deployment")))
    p = PipelineParams(**conf)
    with pytest.raises(PolicyError, match="refused before training") as e:
        check_promotion_policy(p)
    assert message in str(e.value)
    assert promotion_violations(p.model_copy(update={"promote": False})) == []  # training and gating without promoting: fine


@pytest.mark.parametrize("conf", [{}, {"gate_profile": "strict"}, {"gate_overrides": {"retrieval.min_gain_mul": 0.02}},
                                  {"gate_overrides": {"bias.rank_distance_ceiling": 800}},
                                  {"gate_profile": "strict", "gate_overrides": {"retrieval.floor_mul": 0.5}},
                                  {"eval_questions_per_lang": 200}, {"eval_questions_per_lang": None},
                                  {"seed": 5, "steps": 200}])
def test_a_promoting_run_may_tighten_a_gate_or_evaluate_on_more_questions(deployment, conf):
    assert promotion_violations(PipelineParams(**conf)) == []


def test_the_deployment_not_the_trigger_names_the_gate_profile_and_the_floor(deployment, monkeypatch):
    monkeypatch.setenv("XLIR_PIPELINE_DEFAULTS", json.dumps(
        {"gate_profile": "smoke", "gate_overrides": {"retrieval.min_gain_mul": -1.0}, "eval_questions_per_lang": 3,
         "eval_seed": 4}))
    policy = deployment_policy()
    assert (policy.gate_profile, policy.min_eval_questions_per_lang, policy.eval_seed) == ("smoke", 3, 4)
    assert promotion_violations(PipelineParams(gate_profile="smoke", gate_overrides={"retrieval.min_gain_mul": -1.0},
                                               eval_questions_per_lang=3, eval_seed=4)) == []
    assert promotion_violations(PipelineParams(gate_profile="default", eval_questions_per_lang=3, eval_seed=4)) == []
    assert promotion_violations(PipelineParams(gate_profile="smoke", gate_overrides={"retrieval.min_gain_mul": -2.0},
                                               eval_questions_per_lang=3, eval_seed=4))
    # an explicit floor below the deployment's default size; a floor above its own default is a config error
    monkeypatch.setenv("XLIR_PIPELINE_DEFAULTS", json.dumps({"eval_questions_per_lang": 200,
                                                             "min_eval_questions_per_lang": 100}))
    assert deployment_policy().min_eval_questions_per_lang == 100
    assert promotion_violations(PipelineParams(eval_questions_per_lang=100)) == []
    assert promotion_violations(PipelineParams(eval_questions_per_lang=99))
    monkeypatch.setenv("XLIR_PIPELINE_DEFAULTS", json.dumps({"min_eval_questions_per_lang": 300}))
    with pytest.raises(XlirError, match="below the deployment's own floor"):
        deployment_policy()
    # a comparison never promotes, so its gates and evaluation are its own
    monkeypatch.delenv("XLIR_PIPELINE_DEFAULTS")
    assert "unknown gate setting" in promotion_violations(PipelineParams(gate_overrides={"retrieval.nope": 1}))[0]
    assert promotion_violations(CompareParams(gate_profile="smoke", eval_questions_per_lang=1, promote=True)) == []


def test_a_refused_run_stops_in_the_first_task_before_any_training_or_tracking(deployment, monkeypatch):
    from xlir.pipeline.tasks import prepare_training_data

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # reaching MLflow would be a TrackingError instead
    with pytest.raises(PolicyError, match="gate_profile|retrieval.min_gain_mul"):
        prepare_training_data("run-1", {"gate_profile": "smoke", "eval_questions_per_lang": 1})
    with pytest.raises(PolicyError, match="not a store version"):
        prepare_training_data("run-2", {"promote": False}, ["../../etc"])
    with pytest.raises(PolicyError, match="not under a data root"):
        prepare_training_data("run-3", {"promote": False, "train_datasets": ["/etc/hostname"]})


def _store_version(store: Path, version: str, passed: bool = True) -> None:
    folder = store / version
    folder.mkdir()
    (folder / "questions.parquet").write_bytes(b"")
    (folder / "manifest.json").write_text(json.dumps({"version": version, "validation": {"passed": passed}}))


def test_ingested_versions_must_be_store_versions_that_passed_the_contract(deployment, tmp_path):
    from xlir.pipeline.tasks import ingested_questions_path

    store = tmp_path / "store"
    _store_version(store, GOOD_VERSION)
    assert ingested_questions_path(GOOD_VERSION) == str(store / GOOD_VERSION / "questions.parquet")
    for bad in ("../store/" + GOOD_VERSION, str(store / GOOD_VERSION), "..", "x" * 16):
        with pytest.raises(PolicyError, match="not a store version"):
            ingested_questions_path(bad)
    _store_version(store, "f" * 16, passed=False)
    with pytest.raises(PolicyError, match="did not pass the data contract"):
        ingested_questions_path("f" * 16)
    _store_version(store, "d" * 16)
    (store / ("d" * 16) / "manifest.json").write_text("{torn")
    with pytest.raises(PolicyError, match="no readable manifest"):
        ingested_questions_path("d" * 16)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    _store_version(outside, "e" * 16)
    (store / ("e" * 16)).symlink_to(outside / ("e" * 16))
    with pytest.raises(PolicyError, match="is a link"):
        ingested_questions_path("e" * 16)


def test_training_files_only_from_the_data_roots_and_only_when_they_pass_the_contract(deployment, tmp_path):
    from xlir.pipeline.tasks import check_training_sources

    policy = deployment_policy()
    p = PipelineParams(promote=False)
    good = deployment / "good.jsonl"
    good.write_bytes((FIXTURES / "good.jsonl").read_bytes())
    outside = tmp_path / "outside.jsonl"
    outside.write_bytes(good.read_bytes())
    (deployment / "link.jsonl").symlink_to(outside)
    bad = deployment / "bad.jsonl"
    bad.write_text('{"parallel_id": "x", "lang": "xx"}\nnot json\n')
    refused = {
        str(outside): "not under a data root",
        str(deployment / "link.jsonl"): "not under a data root",  # a link inside a root to a file outside
        str(deployment / ".." / ".." / "outside.jsonl"): "not under a data root",
        "good.jsonl": "nor an absolute path",
        "../good.jsonl": "nor an absolute path",
        str(deployment / "missing.jsonl"): "no such file",
        "squad": "neither a named dataset",
    }
    for spec, why in refused.items():
        with pytest.raises(PolicyError, match=why):
            check_training_sources([spec], p, policy)
    with pytest.raises(PolicyError, match="fails the data contract"):
        check_training_sources([str(bad)], p, policy)
    checked = check_training_sources(["mlqa-r", "dream:train", str(good)], p, policy)
    assert checked["mlqa-r"] == "named" and checked[str(good)].startswith("PASSED")
    # a promoting run never trains on a test set (the gates evaluate on it)
    with pytest.raises(PolicyError, match="a test set"):
        check_training_sources(["xquad-r"], PipelineParams(), policy)
    assert check_training_sources(["xquad-r"], p, policy) == {"xquad-r": "named"}


def test_the_deployments_own_default_training_files_are_allowed_without_a_root(deployment, monkeypatch, tmp_path):
    from xlir.pipeline.tasks import check_training_sources

    monkeypatch.delenv("XLIR_DATA_ROOTS")
    mine = tmp_path / "deployment-data.jsonl"
    mine.write_bytes((FIXTURES / "good.jsonl").read_bytes())
    other = tmp_path / "other.jsonl"
    other.write_bytes(mine.read_bytes())
    monkeypatch.setenv("XLIR_PIPELINE_DEFAULTS", json.dumps({"train_datasets": [str(mine)]}))
    policy = deployment_policy()
    assert policy.data_roots == () and str(mine) in policy.default_train_paths
    assert str(mine) in check_training_sources([str(mine)], PipelineParams(promote=False), policy)
    with pytest.raises(PolicyError, match="which is not set"):
        check_training_sources([str(other)], PipelineParams(promote=False), policy)


# ------------------------------------------------------------------ task timeouts and the lock's lease


def test_every_task_kind_has_a_bound_and_the_promotion_stays_below_the_lock_lease(monkeypatch):
    from datetime import timedelta

    from xlir.pipeline.dag_support import TASK_TIMEOUTS, TIMEOUTS, task_timeout
    from xlir.registry.lock import RegistryLock, lock_lease

    for var in ("XLIR_REGISTRY_LOCK_LEASE", *(env for env, _, _ in TIMEOUTS.values())):
        monkeypatch.delenv(var, raising=False)
    assert task_timeout("xlir_train", "promote") < timedelta(seconds=lock_lease()) == timedelta(seconds=600)
    assert RegistryLock(None, "m").ttl == lock_lease()
    assert task_timeout("xlir_train", "train") >= timedelta(hours=24)  # a long CPU training takes hours
    assert task_timeout("xlir_train", "evaluate") >= timedelta(hours=6)
    assert {k for tasks in TASK_TIMEOUTS.values() for k in tasks.values()} == set(TIMEOUTS)
    monkeypatch.setenv("XLIR_TRAIN_TIMEOUT", str(72 * 3600))
    assert task_timeout("xlir_compare", "train") == timedelta(hours=72)
    monkeypatch.setenv("XLIR_PROMOTE_TIMEOUT", "600")  # not below the 600 s lease
    with pytest.raises(XlirError, match="must be below the registry lock's lease"):
        task_timeout("xlir_train", "promote")
    monkeypatch.setenv("XLIR_REGISTRY_LOCK_LEASE", "1200")
    assert task_timeout("xlir_train", "promote") == timedelta(seconds=600)
    assert RegistryLock(None, "m").ttl == 1200
    with pytest.raises(XlirError, match="no timeout for task xlir_train.new_task"):
        task_timeout("xlir_train", "new_task")
    monkeypatch.setenv("XLIR_EVAL_TIMEOUT", "soon")
    with pytest.raises(XlirError, match="XLIR_EVAL_TIMEOUT"):
        task_timeout("xlir_train", "evaluate")
