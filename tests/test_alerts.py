"""Alerts (issue 16, item 5): the promote task's decision, posted by its Airflow notifier to the
deployment's webhook, here a local receiver; nothing when unset; a failing webhook logged, never raised."""

import logging
from types import SimpleNamespace

import pytest

from webhook_receiver import receiver  # noqa: F401 (a fixture)
from xlir.pipeline.alerts import WEBHOOK_ENV, decision_alert, headline_deltas

DECISION = {  # the parts of a GateDecision dump the alert reads
    "gates": {"dataset": "xquad-r"},
    "candidate": {"metrics": {"xquad_r.map.mo": 0.806, "xquad_r.map.cr": 0.690, "xquad_r.map.mul": 0.566,
                              "xquad_r.rank_distance": 282.1, "xquad_r.map.mul.th": 0.5}},
    "reference": {"metrics": {"xquad_r.map.mo": 0.800, "xquad_r.map.cr": 0.625, "xquad_r.map.mul": 0.290,
                              "xquad_r.rank_distance": 1281.1}},
}
PROMOTED = {"version": 2, "promoted": True, "champion": 2, "previous_champion": 1, "status": "passed", "failed": [],
            "message": "v2 is champion (previous champion v1)", "registered_model": "xlir-encoder",
            "model_uri": "models:/xlir-encoder/2", "mlflow_run_id": "abc123", "headline": headline_deltas(DECISION)}
REJECTED = {**PROMOTED, "version": 3, "promoted": False, "champion": 2, "previous_champion": 1, "status": "rejected",
            "failed": ["retrieval.min_gain_mul", "retrieval.language_drop.th"], "message": "gate rejected",
            "model_uri": "models:/xlir-encoder/3"}


def notify(promoted, run_id="manual__2026-11-30T12:00:00+00:00"):
    """The notifier as the promote task's on_success_callback calls it (a task instance whose XCom is ``promoted``)."""
    from xlir.pipeline.notifier import DecisionNotifier

    ti = SimpleNamespace(task_id="promote", dag_id="xlir_train", run_id=run_id,
                         xcom_pull=lambda task_ids: promoted if task_ids == "promote" else None)
    DecisionNotifier()({"ti": ti})


@pytest.fixture
def deployment(airflow_home, monkeypatch):
    monkeypatch.setenv("XLIR_MLFLOW_UI_URL", "http://127.0.0.1:5000/")
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://127.0.0.1:8080")


def test_a_promotion_is_posted_with_its_summary_deltas_and_links(deployment, receiver, monkeypatch):
    monkeypatch.setenv(WEBHOOK_ENV, receiver.url)
    notify(PROMOTED)
    assert len(receiver.received) == 1
    got = receiver.received[0]
    assert got["path"] == "/hooks/xlir-SECRET" and got["content_type"] == "application/json"
    body = got["body"]
    assert {k: body[k] for k in ("event", "model", "version", "decision", "champion", "previous_champion",
                                 "failed_gates")} == {
        "event": "promotion", "model": "xlir-encoder", "version": 2, "decision": "passed", "champion": 2,
        "previous_champion": 1, "failed_gates": []}
    assert body["headline"]["xquad_r.map.mul"] == {"candidate": 0.566, "champion": 0.290, "delta": pytest.approx(0.276)}
    assert body["headline"]["xquad_r.rank_distance"]["delta"] == pytest.approx(-999.0)
    assert list(body["headline"]) == ["xquad_r.map.mo", "xquad_r.map.cr", "xquad_r.map.mul", "xquad_r.rank_distance"]
    assert body["links"] == {
        "mlflow_run": "http://127.0.0.1:5000/#/runs/abc123",
        "mlflow_version": "http://127.0.0.1:5000/#/models/xlir-encoder/versions/2",
        "airflow_run": "http://127.0.0.1:8080/dags/xlir_train/runs/manual__2026-11-30T12%3A00%3A00%2B00%3A00"}
    assert body["text"].startswith("xlir-encoder v2 promoted to champion (previous champion v1): mAP Mo. +0.006 ▲, "
                                   "mAP Cr. +0.065 ▲, mAP Mul. +0.276 ▲, rank distance -999.0 ▲")
    assert "http://127.0.0.1:5000/#/models/xlir-encoder/versions/2" in body["text"] and "8080/dags/" in body["text"]


def test_a_rejection_is_posted_with_the_failed_gates(deployment, receiver, monkeypatch):
    monkeypatch.setenv(WEBHOOK_ENV, receiver.url)
    notify(REJECTED)
    body = receiver.received[0]["body"]
    assert (body["event"], body["decision"], body["version"], body["champion"]) == ("rejection", "rejected", 3, 2)
    assert body["failed_gates"] == ["retrieval.min_gain_mul", "retrieval.language_drop.th"]
    assert body["text"].startswith("xlir-encoder v3 rejected by the gates (retrieval.min_gain_mul, "
                                   "retrieval.language_drop.th); champion stays v2: mAP Mo. +0.006 ▲")


def test_an_alert_words_each_change_as_the_gate_report_does():
    """Same digits and arrows as ``xlir registry report``: a small rank-distance change keeps one decimal."""
    reference = {"xquad_r.map.mo": 0.810, "xquad_r.map.cr": 0.690, "xquad_r.map.mul": 0.566, "xquad_r.rank_distance": 300.0}
    decision = {**DECISION, "reference": {"metrics": reference}}
    text = decision_alert({**REJECTED, "headline": headline_deltas(decision)})["text"]
    assert "champion stays v2: mAP Mo. -0.004 ▼, mAP Cr. 0, mAP Mul. 0, rank distance -17.9 ▲" in text


def test_nothing_is_sent_without_a_webhook_or_without_a_decision(deployment, receiver, monkeypatch, caplog):
    monkeypatch.delenv(WEBHOOK_ENV, raising=False)
    with caplog.at_level(logging.INFO, logger="xlir.pipeline.alerts"):
        notify(PROMOTED)
    assert receiver.received == [] and f"{WEBHOOK_ENV} is not set: no alert sent" in caplog.text
    monkeypatch.setenv(WEBHOOK_ENV, receiver.url)
    notify({"version": 4, "promoted": False, "status": "not-requested", "model_uri": "models:/xlir-encoder/4"})
    notify(None)  # no XCom at all
    assert receiver.received == [] and decision_alert({"status": "not-requested"}) is None


@pytest.mark.parametrize("failure", ["500", "refused", "not-http"])
def test_a_failing_webhook_is_logged_without_its_secret_and_never_raises(deployment, receiver, monkeypatch, caplog,
                                                                        failure):
    from xlir.net import free_port

    receiver.status = 500
    url = {"500": receiver.url, "refused": f"http://127.0.0.1:{free_port()}/hooks/xlir-SECRET",
           "not-http": "ftp://example.invalid/hooks/xlir-SECRET"}[failure]
    monkeypatch.setenv(WEBHOOK_ENV, url)
    with caplog.at_level(logging.ERROR, logger="xlir.pipeline.alerts"):
        notify(REJECTED)  # returns: the callback never fails the task
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and "the decision stands" in errors[0] and "SECRET" not in caplog.text
    if failure == "500":
        assert len(receiver.received) == 1 and "HTTP Error 500" in errors[0]


def test_the_promote_task_announces_its_decision_through_the_notifier(dagbag):
    from xlir.pipeline.notifier import DecisionNotifier

    callbacks = dagbag.dags["xlir_train"].get_task("promote").on_success_callback
    assert any(isinstance(c, DecisionNotifier) for c in callbacks)
