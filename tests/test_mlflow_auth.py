"""MLflow's basic-auth app as the local stack and compose run it (``xlir.stack.mlflow_auth``): the
pipeline's own user runs the real registry flow (baseline, registration under the lock, gates,
promotion), while every anonymous write to the registry is refused and changes nothing; a
logged-in reader cannot write either, and the pipeline user cannot administer users.

One ``mlflow server --app-name basic-auth`` for the module (``LocalServer(auth=True)``)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tiny_training import one_thread  # noqa: F401 - an autouse fixture: one torch thread
from xlir.registry.server import LocalServer
from xlir.stack.mlflow_auth import ADMIN, PIPELINE_USER, ensure_pipeline_user, request

PIPELINE_PASSWORD = "pipeline-password-for-tests"
MODEL = "auth-enc"


@pytest.fixture(scope="module")
def server():
    root = Path(tempfile.mkdtemp(prefix="xlir-mlflow-auth-"))
    srv = LocalServer(root, auth=True)
    try:
        yield srv.start()
    finally:
        srv.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def pipeline(server):
    """As the pipeline user (by environment, as Airflow's processes get it): the untuned baseline as
    champion (v1), a trained candidate (v2) registered under the registry lock, gated and promoted."""
    from test_registry_mlflow import EVAL, E5_UNTUNED, metrics
    from xlir.models import load_encoder
    from xlir.registry import Registry, gate_and_promote, promotion, track_pipeline_run

    assert ensure_pipeline_user(server.uri, server.admin_password, PIPELINE_PASSWORD) is True
    assert ensure_pipeline_user(server.uri, server.admin_password, PIPELINE_PASSWORD) is False  # idempotent
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", server.uri)
        mp.setenv("MLFLOW_TRACKING_USERNAME", PIPELINE_USER)
        mp.setenv("MLFLOW_TRACKING_PASSWORD", PIPELINE_PASSWORD)
        mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        reg = Registry(server.uri, MODEL, experiment="auth-exp")
        promotion.ensure_baseline(reg, "tiny", EVAL, evaluator=lambda cfg: E5_UNTUNED)
        with track_pipeline_run("auth-run-1", experiment=reg.experiment) as run:
            run.log_config(evaluation=EVAL)
            version = reg.register_model(load_encoder("tiny", device="cpu"), run.run_id, "auth-run-1",
                                         metrics(mul=0.63), EVAL)
        result = gate_and_promote(version, "auth-run-1", "default", name=MODEL)
        run_id = reg.version(2).run_id
        yield {"result": result, "run_id": run_id, "experiment_id": reg.client.get_run(run_id).info.experiment_id,
               "champion": reg.champion().version, "previous": reg.alias("previous-champion").version,
               "card": _artifact(server, run_id, reg.client.get_run(run_id).info.experiment_id)}


def _artifact(server, run_id: str, experiment_id: str) -> str:
    status, body = request(server.uri, "GET", f"/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts/"
                           "model_card.md", auth=(PIPELINE_USER, PIPELINE_PASSWORD))
    assert status == 200, body
    return str(body)


def test_the_pipeline_user_runs_the_registry_flow(pipeline):
    assert pipeline["result"].promoted and pipeline["result"].status == "passed"
    assert (pipeline["champion"], pipeline["previous"]) == (2, 1)
    assert "promoted to champion" in pipeline["card"]


def anonymous_writes(p: dict) -> dict[str, tuple[str, str, dict | None]]:
    """Each way an anonymous local user or container could change what gets served or trained on."""
    art = f"/api/2.0/mlflow-artifacts/artifacts/{p['experiment_id']}/{p['run_id']}/artifacts/model_card.md"
    return {
        "move champion": ("POST", "/api/2.0/mlflow/registered-models/alias",
                          {"name": MODEL, "alias": "champion", "version": "1"}),
        "delete the champion alias": ("DELETE", "/api/2.0/mlflow/registered-models/alias",
                                      {"name": MODEL, "alias": "champion"}),
        "take the registry lock": ("POST", "/api/2.0/mlflow/registered-models/create", {"name": f"{MODEL}.lock"}),
        "delete the registered model (or its lock)": ("DELETE", "/api/2.0/mlflow/registered-models/delete",
                                                      {"name": MODEL}),
        "register a version": ("POST", "/api/2.0/mlflow/model-versions/create",
                               {"name": MODEL, "source": f"runs:/{p['run_id']}/model", "run_id": p["run_id"]}),
        "mark a version passed": ("POST", "/api/2.0/mlflow/model-versions/set-tag",
                                  {"name": MODEL, "version": "1", "key": "gate.status", "value": "passed"}),
        "overwrite an artifact workers load": ("PUT", art, None),
        "delete an artifact": ("DELETE", art, None),
        "log a metric the gates read": ("POST", "/api/2.0/mlflow/runs/log-metric",
                                        {"run_id": p["run_id"], "key": "xquad_r.map.mul", "value": 0.99,
                                         "timestamp": 0, "step": 0}),
        "create a user": ("POST", "/api/2.0/mlflow/users/create", {"username": "intruder", "password": "x" * 16}),
    }


ANONYMOUS_WRITES = list(anonymous_writes({"experiment_id": "0", "run_id": "r"}))


@pytest.mark.parametrize("what", ANONYMOUS_WRITES)
def test_an_anonymous_registry_write_is_refused_and_changes_nothing(server, pipeline, what):
    method, path, body = anonymous_writes(pipeline)[what]
    if method == "PUT":
        import urllib.error
        import urllib.request

        req = urllib.request.Request(server.uri + path, data=b"tampered", method="PUT")
        try:
            urllib.request.urlopen(req, timeout=30)
            status = 200
        except urllib.error.HTTPError as e:
            status = e.code
    else:
        status, _ = request(server.uri, method, path, body)
    assert status == 401, (what, status)
    # nothing moved: the champion, the previous champion, no lock, the model card as written
    status, out = request(server.uri, "GET", "/api/2.0/mlflow/registered-models/get", query={"name": MODEL},
                          auth=(ADMIN, server.admin_password))
    assert status == 200
    aliases = {a["alias"]: int(a["version"]) for a in out["registered_model"].get("aliases", [])}
    assert aliases == {"champion": 2, "previous-champion": 1}
    lock, _ = request(server.uri, "GET", "/api/2.0/mlflow/registered-models/get", query={"name": f"{MODEL}.lock"},
                      auth=(ADMIN, server.admin_password))
    assert lock == 404
    assert _artifact(server, pipeline["run_id"], pipeline["experiment_id"]) == pipeline["card"]


def test_a_wrong_password_and_a_reader_cannot_move_an_alias_and_the_pipeline_user_is_no_admin(server, pipeline):
    move = {"name": MODEL, "alias": "champion", "version": "1"}
    path = "/api/2.0/mlflow/registered-models/alias"
    assert request(server.uri, "POST", path, move, auth=(PIPELINE_USER, "wrong-password-123"))[0] == 401
    status, _ = request(server.uri, "POST", "/api/2.0/mlflow/users/create", {"username": "reader", "password": "r" * 16},
                        auth=(ADMIN, server.admin_password))
    assert status == 200
    assert request(server.uri, "GET", "/api/2.0/mlflow/registered-models/get", query={"name": MODEL},
                   auth=("reader", "r" * 16))[0] == 200  # default_permission READ
    assert request(server.uri, "POST", path, move, auth=("reader", "r" * 16))[0] == 403
    pipe = (PIPELINE_USER, PIPELINE_PASSWORD)
    assert request(server.uri, "POST", "/api/2.0/mlflow/users/create", {"username": "x", "password": "x" * 16},
                   auth=pipe)[0] == 403
    assert request(server.uri, "POST", "/api/3.0/mlflow/users/permissions/grant",
                   {"username": "reader", "resource_type": "registered_model", "resource_id": "*",
                    "permission": "MANAGE"}, auth=pipe)[0] == 403
    assert request(server.uri, "GET", "/health")[0] == 200  # health checks need no login


def test_a_changed_pipeline_password_is_applied_by_the_admin(server, pipeline):
    new = PIPELINE_PASSWORD + "-rotated"
    try:
        assert ensure_pipeline_user(server.uri, server.admin_password, new) is False
        assert request(server.uri, "GET", "/api/2.0/mlflow/users/current", auth=(PIPELINE_USER, new))[0] == 200
        assert request(server.uri, "GET", "/api/2.0/mlflow/users/current",
                       auth=(PIPELINE_USER, PIPELINE_PASSWORD))[0] == 401
    finally:
        ensure_pipeline_user(server.uri, server.admin_password, PIPELINE_PASSWORD)
