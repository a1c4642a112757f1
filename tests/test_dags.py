"""The Airflow DAGs: they import, follow the conventions, refuse bad params, and run end to end.

One isolated AIRFLOW_HOME (SQLite, ``airflow db migrate`` once) per test process, set before
Airflow is imported (the ``airflow_home``, ``airflow_db`` and ``dagbag`` fixtures of conftest.py);
the end-to-end runs use ``dag.test()`` with the tiny encoder on a small slice of MLQA-R, evaluated on 3 XQuAD-R questions per language, against one real MLflow server
(tests/mlflow_server.py). Each test owns its registered-model name, experiment and folders.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DAG_IDS = {"xlir_ingest", "xlir_train", "xlir_compare"}


# ------------------------------------------------------------------ structure


def test_dagbag_imports_every_dag_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert DAG_IDS <= set(dagbag.dags)


@pytest.mark.parametrize("dag_id", sorted(DAG_IDS))
def test_every_dag_has_tags_owner_docs_and_retries(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert dag.tags and "xlir" in dag.tags
    assert dag.doc_md and dag_id in dag.doc_md
    for t in dag.tasks:
        assert t.owner == "xlir", t.task_id
        assert t.doc_md, f"{dag_id}.{t.task_id} has no doc_md"
        assert t.retries is not None
    assert any(t.retries > 0 for t in dag.tasks)


def test_dag_files_import_no_heavy_library_at_top_level(airflow_home):
    code = ("import sys, runpy; [runpy.run_path(f'dags/{n}.py') for n in ('xlir_ingest', 'xlir_train', 'xlir_compare')]; "
            "heavy = [m for m in ('torch', 'mlflow', 'pandas', 'faiss', 'sentence_transformers', 'transformers') "
            "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy(),
                       cwd=Path(__file__).resolve().parents[1], timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


def test_train_is_scheduled_on_the_ingest_asset_and_promote_uses_the_one_slot_pool(dagbag):
    ingest, train = dagbag.dags["xlir_ingest"], dagbag.dags["xlir_train"]
    outlets = [a.uri.rstrip("/") for a in ingest.get_task("publish").outlets]
    assert outlets == ["xlir://validated-qa"]
    assert "xlir_validated_qa" in str(train.timetable.asset_condition)
    assert train.get_task("promote").pool == "xlir_promotion"
    assert train.get_task("evaluate").__class__.__name__.endswith("MappedOperator")


def test_training_and_encoding_tasks_go_to_the_training_queue_when_one_is_configured(airflow_db, monkeypatch, dagbag):
    from airflow.dag_processing.dagbag import DagBag

    default = {t.queue for d in dagbag.dags.values() for t in d.tasks}
    monkeypatch.setenv("XLIR_TRAIN_QUEUE", "training")
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    queues = {(d.dag_id, t.task_id): t.queue for d in bag.dags.values() for t in d.tasks}
    heavy = {k for k in queues if k[1] in ("train", "evaluate", "reference")}
    assert heavy == {("xlir_train", "train"), ("xlir_train", "evaluate"), ("xlir_compare", "train"),
                     ("xlir_compare", "evaluate"), ("xlir_compare", "reference")}
    assert {queues[k] for k in heavy} == {"training"}
    assert {q for k, q in queues.items() if k not in heavy} == default and "training" not in default


def test_ingest_schedule_defaults_to_every_15_minutes(dagbag):
    from airflow.serialization.serialized_objects import encode_timetable

    assert "*/15 * * * *" in json.dumps(encode_timetable(dagbag.dags["xlir_ingest"].timetable))


# ------------------------------------------------------------------ params


def test_params_carry_title_description_and_bounds(dagbag):
    params = dagbag.dags["xlir_train"].params
    schema = {k: params.get_param(k).schema for k in params}
    described = {k: params.get_param(k).description for k in params}
    assert schema["strategy"]["enum"] == ["mono", "cross", "hybrid"]
    assert schema["alpha"]["minimum"] == 0 and schema["alpha"]["maximum"] == 1
    assert "smoke" in schema["gate_profile"]["enum"]
    for name, s in schema.items():
        assert s.get("title") and described[name] and s.get("section"), name


@pytest.mark.parametrize("bad", [
    {"strategy": "random"},
    {"alpha": 1.5},
    {"alpha": -0.1},
    {"steps": 0},
    {"batch_size": 1},
    {"max_seq_length": 4},
    {"gate_profile": "lenient"},
    {"promote": "yes"},
    {"eval_questions_per_lang": 0},
    {"train_datasets": []},
    {"merge_with_base": "best"},
    {"merge_with_base": 1.5},
    {"align_weight": -1},
    {"eval_max_seq_length": 4},
])
def test_train_params_refuse_bad_values_at_trigger_time(dagbag, bad):
    from airflow.sdk.definitions.param import ParamsDict
    from airflow.sdk.exceptions import ParamValidationError

    params = ParamsDict(dagbag.dags["xlir_train"].params)
    for k, v in bad.items():
        with pytest.raises((ParamValidationError, ValueError)):
            params[k] = v
            params.validate()


def test_train_params_accept_the_defaults_and_a_good_conf(dagbag):
    from airflow.sdk.definitions.param import ParamsDict

    params = ParamsDict(dagbag.dags["xlir_train"].params)
    params.update({"strategy": "mono", "alpha": 0.0, "steps": 2, "gate_profile": "smoke", "promote": False})
    out = params.validate()
    assert out["strategy"] == "mono" and out["steps"] == 2


def test_compare_params_refuse_an_alpha_outside_0_1(dagbag):
    from airflow.sdk.definitions.param import ParamsDict
    from airflow.sdk.exceptions import ParamValidationError

    params = ParamsDict(dagbag.dags["xlir_compare"].params)
    with pytest.raises((ParamValidationError, ValueError)):
        params["alphas"] = [0.2, 2.0]
        params.validate()


# ------------------------------------------------------------------ end to end (dag.test)

from mlflow_server import shared_server, unique  # noqa: E402
from webhook_receiver import receiver  # noqa: E402,F401 (a fixture)

LANGS = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")


def synthetic(value: float, rd: float) -> dict[str, float]:
    """Gating metrics of a made-up champion (all languages at ``value``)."""
    m = {f"xquad_r.map.{k}": value for k in ("mo", "cr", "mul")}
    m["xquad_r.rank_distance"] = rd
    m.update({f"xquad_r.map.mul.{lang}": value for lang in LANGS})
    return m


@pytest.fixture(scope="module")
def mlflow_uri():
    uri = shared_server().uri
    before = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    yield uri
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


@pytest.fixture(scope="module")
def small_train_file(tmp_path_factory):
    """30 parallel ids of MLQA-R in three languages, as JSONL."""
    from mlqa_slice import write_mlqa_slice

    return write_mlqa_slice(tmp_path_factory.mktemp("train-data") / "mlqa-slice.jsonl")


@pytest.fixture
def pipeline_dirs(tmp_path, monkeypatch):
    dirs = {k: tmp_path / k for k in ("landing", "store", "quarantine", "pipeline")}
    for k, v in dirs.items():
        v.mkdir()
        monkeypatch.setenv(f"XLIR_{'PIPELINE' if k == 'pipeline' else k.upper()}_DIR", str(v))
    return dirs


@pytest.fixture(autouse=True)
def test_deployment(request, monkeypatch, tmp_path_factory):
    """The deployment the end-to-end runs belong to. The deployment, never a trigger's conf, names the
    gate profile, the gating evaluation (its floor of questions per language, seed and length) and the
    folders training files may come from (issue 13); these runs gate on the smoke profile with 3
    questions per language and train on files under pytest's temporary folder."""
    if "small_train_file" in request.fixturenames:
        monkeypatch.setenv("XLIR_PIPELINE_DEFAULTS", json.dumps(
            {"gate_profile": "smoke", "eval_questions_per_lang": 3, "eval_max_seq_length": 32}))
        monkeypatch.setenv("XLIR_DATA_ROOTS", str(tmp_path_factory.getbasetemp()))


def run_conf(train_file: str, **kw) -> dict:
    return {"base_model": "tiny", "train_datasets": [train_file], "strategy": "hybrid", "alpha": 0.5, "steps": 2,
            "batch_size": 4, "max_seq_length": 32, "eval_max_seq_length": 32, "checkpoint_every": 1, "validation_fraction": 0.0, "eval_datasets": ["xquad-r"],
            "eval_questions_per_lang": 3, "registered_model": unique("enc"), "experiment": unique("exp"),
            "data_version": None, **kw}  # every key set: dag.test leaves a conf's values in the DAG's Param objects


def states(dr) -> dict[str, str]:
    return {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dr.get_task_instances()}


def crown(conf: dict, metrics: dict) -> int:
    """A champion with made-up metrics on the run's own evaluation config."""
    from xlir.pipeline.params import PipelineParams
    from xlir.pipeline.tasks import GATING_DATASET, eval_config
    from xlir.registry import ensure_baseline

    from types import SimpleNamespace

    from xlir.data import load_dataset

    p = PipelineParams(**conf)
    made_up = SimpleNamespace(metrics=metrics, info={"dataset_version": load_dataset(GATING_DATASET).version})
    return ensure_baseline(p.base_model, eval_config(p, GATING_DATASET, p.base_model), name=p.registered_model,
                           evaluator=lambda cfg: made_up, experiment=p.experiment)


def xcom(dr, task_id: str):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as s:
        row = s.query(XComModel).filter_by(dag_id=dr.dag_id, run_id=dr.run_id, task_id=task_id, key="return_value").first()
        return None if row is None else XComModel.deserialize_value(row)


@pytest.fixture(scope="module")
def promoted_run(dagbag, mlflow_uri, small_train_file, tmp_path_factory):
    """The data's way, run once for the module: a file landed and ingested by xlir_ingest (its asset
    event recorded in MLflow), then xlir_train on it (the ``data_version`` param) against a made-up
    champion the smoke gates let it beat. Later tests read what it left in Airflow and MLflow."""
    import time

    from mlqa_slice import write_mlqa_slice
    from xlir.evaluation.encode import encodings
    from xlir.registry import promotion

    root = tmp_path_factory.mktemp("promoted-run")
    decisions = []
    decide = promotion.decide
    with pytest.MonkeyPatch.context() as mp:
        for k in ("landing", "store", "quarantine", "pipeline"):
            (root / k).mkdir()
            mp.setenv(f"XLIR_{k.upper()}_DIR", str(root / k))
        mp.setenv("XLIR_PIPELINE_DEFAULTS", json.dumps(
            {"gate_profile": "smoke", "eval_questions_per_lang": 3, "eval_max_seq_length": 32}))
        mp.setenv("XLIR_DATA_ROOTS", str(tmp_path_factory.getbasetemp()))
        mp.setattr(promotion, "decide", lambda *a, **k: decisions.append(a[1]) or decide(*a, **k))
        write_mlqa_slice(root / "landing" / "new-qa.jsonl", slice(30, 40))
        before = len(_asset_events())
        ingest = dagbag.dags["xlir_ingest"].test()
        assert str(getattr(ingest.state, "value", ingest.state)) == "success", states(ingest)
        version = xcom(ingest, "ingest")["ingested"][0]
        conf = run_conf(small_train_file, gate_profile="smoke", data_version=version)
        old = crown(conf, synthetic(0.0, 1e9))
        t0 = time.time()
        dr = dagbag.dags["xlir_train"].test(run_conf=conf)
        done = encodings(since=t0, pid=os.getpid())
    return {"dr": dr, "conf": conf, "old": old, "decisions": decisions, "encodings": done, "version": version,
            "events": _asset_events()[before:], "store": root / "store"}


def test_train_dag_end_to_end_promotes_when_the_gates_pass(promoted_run, mlflow_uri):
    from xlir.registry import Registry

    dr, conf, old = promoted_run["dr"], promoted_run["conf"], promoted_run["old"]
    assert str(getattr(dr.state, "value", dr.state)) == "success", states(dr)
    promoted = xcom(dr, "promote")
    assert promoted["promoted"] is True and promoted["status"] == "passed"
    assert promoted_run["decisions"] == [promoted["version"]], "decided once, by the gate task; promote acted on it"
    # the candidate's queries and pool, encoded in this process (dag.test runs tasks in it); the champion's
    # metrics are reused. Other processes on the machine write the same ledger.
    done = promoted_run["encodings"]
    assert len(done) == 2 and len({e["key"] for e in done}) == 2, done
    reg = Registry(mlflow_uri, conf["registered_model"], experiment=conf["experiment"])
    assert reg.champion().version == promoted["version"] != old
    assert reg.alias("previous-champion").version == old
    assert not xcom(dr, "gate")["failed"]
    from mlflow import MlflowClient

    runs = MlflowClient(mlflow_uri).search_runs(
        [reg.client.get_experiment_by_name(conf["experiment"]).experiment_id],
        filter_string=f"tags.`xlir.pipeline_run_id` = '{dr.run_id}'")
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}  # the DAG run's run and its child
    trained = xcom(dr, "train")
    assert set(trained) >= {"model_dir", "mlflow_run_id", "variant"} and len(json.dumps(trained)) < 2000


def test_train_dag_end_to_end_moves_nothing_when_the_gates_fail(dagbag, mlflow_uri, small_train_file, pipeline_dirs,
                                                                receiver, monkeypatch):
    from xlir.registry import Registry

    conf = run_conf(small_train_file, gate_profile="default")
    old = crown(conf, synthetic(0.9, 10.0))
    monkeypatch.setenv("XLIR_ALERT_WEBHOOK_URL", receiver.url)
    receiver.status = 500  # a failing webhook: the run and its decision stand
    dr = dagbag.dags["xlir_train"].test(run_conf=conf)
    assert str(getattr(dr.state, "value", dr.state)) == "success", states(dr)
    decision, promoted = xcom(dr, "gate"), xcom(dr, "promote")
    assert decision["passed"] is False and decision["failed"]
    assert promoted["promoted"] is False and promoted["status"] == "rejected"
    reg = Registry(mlflow_uri, conf["registered_model"], experiment=conf["experiment"])
    assert reg.champion().version == old
    assert reg.version(promoted["version"]).tags.get("gate.status") == "rejected"
    # the promote task's notifier posted the rejection once (issue 16, item 5)
    assert [r["body"]["event"] for r in receiver.received] == ["rejection"]
    alert = receiver.received[0]["body"]
    assert (alert["model"], alert["version"], alert["decision"]) == (conf["registered_model"], promoted["version"], "rejected")
    assert alert["failed_gates"] == decision["failed"] and alert["champion"] == old and alert["dag_run_id"] == dr.run_id
    assert set(alert["headline"]) >= {"xquad_r.map.mul", "xquad_r.map.mo"} and alert["links"]["mlflow_version"]


def _asset_events():
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as s:
        return [e.extra for e in s.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .filter(AssetModel.name == "xlir_validated_qa").all()]


def test_ingest_dag_ingests_a_good_file_and_emits_the_asset_with_its_version(dagbag, pipeline_dirs):
    src = Path(__file__).parent / "fixtures" / "validation" / "good.jsonl"
    (pipeline_dirs["landing"] / "good.jsonl").write_bytes(src.read_bytes())
    before = len(_asset_events())
    dr = dagbag.dags["xlir_ingest"].test()
    assert str(getattr(dr.state, "value", dr.state)) == "success", states(dr)
    version = xcom(dr, "ingest")["ingested"][0]
    assert (pipeline_dirs["store"] / version / "questions.parquet").is_file()
    events = _asset_events()[before:]
    assert [e["version"] for e in events] == [version]


def test_ingest_dag_quarantines_a_bad_file_and_fails_visibly(dagbag, pipeline_dirs):
    (pipeline_dirs["landing"] / "bad.jsonl").write_text('{"parallel_id": "x", "lang": "xx"}\nnot json\n')
    before = len(_asset_events())
    dr = dagbag.dags["xlir_ingest"].test()
    st = states(dr)
    assert str(getattr(dr.state, "value", dr.state)) == "failed", st
    assert st["check"] == "failed" and st["ingest"] == "success" and st["publish"] == "skipped"
    assert xcom(dr, "ingest")["quarantined"]
    assert any(pipeline_dirs["quarantine"].iterdir())
    assert not list(pipeline_dirs["landing"].glob("bad.jsonl"))
    assert len(_asset_events()) == before


# ------------------------------------------------------------------ plugin


def test_plugin_registers_the_mlflow_links(airflow_db):
    from airflow import plugins_manager

    names = {link.name for link in plugins_manager.get_global_operator_extra_links()}
    assert {"MLflow run", "MLflow model version", "MLflow UI"} <= names


def test_plugin_links_read_the_task_xcom(dagbag, pipeline_dirs, monkeypatch):
    import importlib.util

    monkeypatch.setenv("XLIR_MLFLOW_UI_URL", "http://127.0.0.1:5999/")
    spec = importlib.util.spec_from_file_location("xlir_links_plugin", Path(os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"]) / "xlir_mlflow_links.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    dr = dagbag.dags["xlir_ingest"].test()  # empty landing: ingest returns a dict without MLflow ids
    ti = next(t for t in dr.get_task_instances() if t.task_id == "ingest")
    assert mod.MLflowRunLink().get_link(None, ti_key=ti.key) == ""
    assert mod.MLflowUILink().get_link(None, ti_key=ti.key) == "http://127.0.0.1:5999"


def test_compare_dag_trains_each_variant_and_logs_table_and_chart(dagbag, mlflow_uri, small_train_file, pipeline_dirs):
    from mlflow import MlflowClient

    conf = run_conf(small_train_file, strategies=["mono", "hybrid"], alphas=[0.25], precision="int8")
    conf.pop("registered_model")
    dr = dagbag.dags["xlir_compare"].test(run_conf=conf)
    assert str(getattr(dr.state, "value", dr.state)) == "success", states(dr)
    out = xcom(dr, "compare")
    assert out["variants"] == ["hybrid-a0.25", "hybrid-a0.5", "mono", "untuned"]
    table = Path(out["table"]).read_text()
    assert "| mono |" in table and "map.mul" in table and "(int8 fast path" in table
    first_rows = [line for line in table.splitlines() if line.startswith("| ") and "variant" not in line]
    assert first_rows[0].startswith("| untuned |")  # the shared reference, evaluated once, leads
    assert len(xcom(dr, "reference")) == len(conf["eval_datasets"])
    metrics = json.loads((Path(xcom(dr, "reference")[0]["output_dir"]) / "metrics.json").read_text())
    assert metrics["info"]["precision"] == "int8"
    files = {f.path for f in MlflowClient(mlflow_uri).list_artifacts(out["mlflow_run_id"], "comparison")}
    assert files == {"comparison/comparison.md", "comparison/comparison.png"}


# ------------------------------------------------------------------ failure behaviour (issue 13)


def test_every_task_has_an_execution_timeout_and_promotion_ends_before_the_lock_lease(dagbag):
    from datetime import timedelta

    from xlir.pipeline.dag_support import TASK_TIMEOUTS, task_timeout
    from xlir.registry.lock import lock_lease

    for dag_id in sorted(DAG_IDS):
        dag = dagbag.dags[dag_id]
        assert {t.task_id for t in dag.tasks} == set(TASK_TIMEOUTS[dag_id]), dag_id  # none forgotten, none stale
        for t in dag.tasks:
            assert t.execution_timeout == task_timeout(dag_id, t.task_id) > timedelta(0), (dag_id, t.task_id)
    promote = dagbag.dags["xlir_train"].get_task("promote").execution_timeout
    assert promote < timedelta(seconds=lock_lease())
    for dag_id, task_id in (("xlir_train", "train"), ("xlir_compare", "train")):
        assert dagbag.dags[dag_id].get_task(task_id).execution_timeout >= timedelta(hours=24)


def test_a_promote_timeout_not_below_the_lock_lease_is_a_dag_import_error(airflow_db, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("XLIR_PROMOTE_TIMEOUT", "900")
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert "xlir_train" not in bag.dags
    assert any("must be below the registry lock's lease" in err for err in bag.import_errors.values())
    monkeypatch.setenv("XLIR_REGISTRY_LOCK_LEASE", "1800")
    assert "xlir_train" in DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags


REFUSED_CONFS = {
    "looser gate profile": ({"gate_profile": "smoke"}, "retrieval.min_gain_mul"),
    "loosening override": ({"gate_overrides": {"retrieval.min_gain_mul": -1.0}}, "is looser than"),
    "below the evaluation floor": ({"eval_questions_per_lang": 1}, "below the deployment's floor"),
    "another evaluation seed": ({"eval_seed": 3}, "eval_seed 3"),
    "file outside the data roots": ({"train_datasets": ["/etc/hostname"]}, "not under a data root"),
}


@pytest.mark.parametrize("case", sorted(REFUSED_CONFS))
def test_train_dag_refuses_what_only_the_deployment_decides_in_prepare_before_any_training(
        dagbag, mlflow_uri, small_train_file, pipeline_dirs, monkeypatch, case):
    from xlir.registry import Registry

    monkeypatch.setenv("XLIR_PIPELINE_DEFAULTS", json.dumps({"gate_profile": "default", "eval_questions_per_lang": 3,
                                                             "eval_max_seq_length": 32}))
    extra, message = REFUSED_CONFS[case]
    conf = run_conf(small_train_file, **extra)
    dr = dagbag.dags["xlir_train"].test(run_conf=conf)
    st = states(dr)
    assert str(getattr(dr.state, "value", dr.state)) == "failed", st
    assert st["prepare"] == "failed" and st["train"] == "upstream_failed" and st["promote"] == "upstream_failed", st
    assert not list(pipeline_dirs["pipeline"].rglob("train_config.json"))  # nothing trained
    assert not Registry(mlflow_uri, conf["registered_model"]).exists()  # nothing registered
    exp = Registry(mlflow_uri, conf["registered_model"]).client.get_experiment_by_name(conf["experiment"])
    assert exp is None  # not even an MLflow run was opened
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as s:  # refused once (a PolicyError fails the task for good), not retried
        ti = s.query(TaskInstance).filter_by(dag_id="xlir_train", run_id=dr.run_id, task_id="prepare").one()
        assert ti.try_number == 1
    from xlir.pipeline.params import PolicyError
    from xlir.pipeline.tasks import prepare_training_data

    with pytest.raises(PolicyError, match=message):  # the task's error, as its log shows it
        prepare_training_data("same-conf", conf)


def test_a_data_version_that_is_a_path_is_refused_at_trigger_time(dagbag):
    from airflow.sdk.definitions.param import ParamsDict
    from airflow.sdk.exceptions import ParamValidationError

    for bad in ("../x", "/etc", "../../store/0123456789abcdef"):
        params = ParamsDict(dagbag.dags["xlir_train"].params)
        with pytest.raises((ParamValidationError, ValueError)):
            params["data_version"] = bad
            params.validate()


# ------------------------------------------------------------------ MLflow: logged models, comparison, lineage (issue 16)


def _client(uri):
    from mlflow import MlflowClient

    return MlflowClient(uri)


def test_the_registered_version_is_a_logged_model_carrying_the_headline_metrics(promoted_run, mlflow_uri):
    dr, conf = promoted_run["dr"], promoted_run["conf"]
    client, version = _client(mlflow_uri), xcom(dr, "promote")["version"]
    trained = xcom(dr, "train")
    mv = client.get_model_version(conf["registered_model"], str(version))
    assert mv.source.startswith("models:/m-")  # the version points at the logged model (REST has no model_id)
    model = client.get_logged_model(mv.source.removeprefix("models:/"))
    assert model.source_run_id == trained["mlflow_run_id"] and model.name == "hybrid-a0_5"  # the variant's name
    linked = {m.key: m for m in model.metrics}
    assert set(linked) == {"xquad_r.map.mo", "xquad_r.map.cr", "xquad_r.map.mul", "xquad_r.rank_distance"}
    run = client.get_run(trained["mlflow_run_id"])
    evaluated = [d.dataset for d in run.inputs.dataset_inputs if d.dataset.name == "xquad-r"]
    assert len(evaluated) == 1
    assert {(m.dataset_name, m.dataset_digest) for m in linked.values()} == {("xquad-r", evaluated[0].digest)}
    assert all(m.value == run.data.metrics[k] for k, m in linked.items())
    exp = client.get_experiment_by_name(conf["experiment"]).experiment_id
    models = client.search_logged_models([exp])  # the Models tab: the candidate and the baseline side by side
    assert sorted(m.name for m in models) == ["baseline", "hybrid-a0_5"]
    assert all({m.key for m in lm.metrics} >= {"xquad_r.map.mul", "xquad_r.rank_distance"} for lm in models)


def test_the_version_shows_the_decision_headline_table_and_comparison_charts(promoted_run, mlflow_uri):
    dr, conf = promoted_run["dr"], promoted_run["conf"]
    client, version = _client(mlflow_uri), xcom(dr, "promote")["version"]
    run_id = xcom(dr, "train")["mlflow_run_id"]
    files = {f.path for f in client.list_artifacts(run_id, "comparison")}
    # the made-up champion has no per-pair metrics, so no matrix delta here (tests/test_registry_report.py draws it)
    assert files == {"comparison/mul_map_by_language.png", "comparison/headline_deltas.png"}
    text = client.get_model_version(conf["registered_model"], str(version)).description
    assert text.startswith("promoted to champion")
    assert f"| dataset | metric | v{version} | v{promoted_run['old']} (baseline) | change |" in text
    assert "| xquad_r | mAP Mul. |" in text and "| xquad_r | rank distance |" in text and "R@1" not in text
    assert f"](get-artifact?path=comparison%2Fmul_map_by_language.png&run_uuid={run_id})" in text  # an image


def test_the_pipeline_run_has_the_ingested_version_as_a_dataset_input_and_its_lineage(promoted_run, mlflow_uri):
    import mlflow.artifacts

    dr, version, client = promoted_run["dr"], promoted_run["version"], _client(mlflow_uri)
    run = client.get_run(xcom(dr, "prepare")["mlflow_run_id"])
    child = client.get_run(xcom(dr, "train")["mlflow_run_id"])
    for r in (run, child):  # the Datasets column of the pipeline run and of the registered version's run
        ingested = [d for d in r.inputs.dataset_inputs if d.dataset.digest == version]
        assert len(ingested) == 1, [(d.dataset.name, d.dataset.digest) for d in r.inputs.dataset_inputs]
        assert json.loads(ingested[0].dataset.source)["uri"] == str(promoted_run["store"] / version)
        assert json.loads(ingested[0].dataset.profile)["passed"] is True
        assert {t.key: t.value for t in ingested[0].tags}["mlflow.data.context"] == "training"
    # the asset event points at the ingest's MLflow run, which has the same data version and points back
    event = next(e for e in promoted_run["events"] if e["version"] == version)
    ingest_run = client.get_run(event["mlflow_run_ids"][version])
    assert [d.dataset.digest for d in ingest_run.inputs.dataset_inputs] == [version]
    assert ingest_run.data.tags[f"xlir.trained_in.{run.info.run_id}"] == dr.run_id
    record = json.loads(run.data.tags[f"data.ingest.{version}"])
    assert record["files"] == ["new-qa.jsonl"] and record["mlflow_run_id"] == ingest_run.info.run_id
    assert {f.path for f in client.list_artifacts(run.info.run_id, f"validation/{version}")} == {
        f"validation/{version}/validation.json", f"validation/{version}/manifest.json"}
    card = mlflow.artifacts.load_text(f"runs:/{child.info.run_id}/model_card.md")
    assert f"ingested data version `{version}`: landed file(s) `new-qa.jsonl`" in card
    assert "validation passed" in card and f"validation/{version}/validation.json" in card
    assert "not recorded" not in card


def test_mlflow_pages_show_the_headline_metrics_and_the_comparison_chart_in_a_browser(promoted_run, mlflow_uri):
    """The MLflow UI as a user opens it after a run (headless Chromium, the Debian package): the candidate's
    run page, the compare page of candidate and baseline, and the version page. The data come from the
    REST API; the DOM shows they are on the page; screenshots go to test-output/mlflow-ui (git-ignored)."""
    import html
    import urllib.request

    from mlflow_browser import OUTPUT, chromium, dump_dom, screenshot

    if chromium() is None:
        pytest.skip("headless Chromium is not installed: `apt-get install chromium` (make test does it as root)")
    dr, conf, client = promoted_run["dr"], promoted_run["conf"], _client(mlflow_uri)
    version, run_id = xcom(dr, "promote")["version"], xcom(dr, "train")["mlflow_run_id"]
    exp = client.get_experiment_by_name(conf["experiment"]).experiment_id
    base_run = client.get_model_version(conf["registered_model"], str(promoted_run["old"])).run_id
    metrics = client.get_run(run_id).data.metrics
    ml = "workflowType=machine_learning"  # the UI's "Model training" view (its default is GenAI's)
    pages = {
        "run": f"{mlflow_uri}/#/experiments/{exp}/runs/{run_id}?{ml}",
        "models": f"{mlflow_uri}/#/experiments/{exp}/models?{ml}",
        "compare": f"{mlflow_uri}/#/compare-runs?runs={json.dumps([run_id, base_run])}&experiments={json.dumps([exp])}",
        "version": f"{mlflow_uri}/#/models/{conf['registered_model']}/versions/{version}",
    }
    out = OUTPUT / "mlflow-ui"
    doms = {}
    out.mkdir(parents=True, exist_ok=True)
    for name, url in pages.items():
        wide = "4000,1200" if name == "models" else "2400,1400"  # the Models grid renders the columns that fit
        doms[name] = dump_dom(url, size=wide)
        (out / f"{name}.html").write_text(doms[name])
        screenshot(url, out / f"{name}.png", size="3200,900" if name == "models" else "1600,1400")
    headline = ("xquad_r.map.mul", "xquad_r.map.mo", "xquad_r.map.cr", "xquad_r.rank_distance")
    for name in ("run", "models"):
        assert all(key in doms[name] for key in headline), (name, [k for k in headline if k not in doms[name]])
    assert f"{metrics['xquad_r.map.mul']:.4f}"[:5] in doms["run"]
    assert "hybrid-a0_5" in doms["models"] and "baseline" in doms["models"]  # side by side, headline columns
    # the compare page: both runs, and MLflow's own choice of a first chart metric (it sorts names)
    assert "hybrid-a0.5" in doms["compare"] and "baseline" in doms["compare"] and "xquad_r.map." in doms["compare"]
    page = html.unescape(doms["version"])
    assert "promoted to champion" in page and "mAP Mul." in page and "rank distance" in page
    chart = f"get-artifact?path=comparison%2Fmul_map_by_language.png&run_uuid={run_id}"
    assert f'src="{chart}"' in page  # the description's Markdown rendered as an image
    assert "promoted to champion" in html.unescape(doms["run"]) and f'src="{chart}"' in html.unescape(doms["run"])
    with urllib.request.urlopen(f"{mlflow_uri}/{chart}", timeout=30) as r:  # and the image is served
        assert r.read(8) == b"\x89PNG\r\n\x1a\n"
    assert all((out / f"{n}.png").stat().st_size > 10_000 for n in pages)
