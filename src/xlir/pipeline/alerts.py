"""Alerts: each gate decision the ``promote`` task acts on (a promotion or a rejection), posted to the
deployment's webhook. Pure Python, no Airflow: ``xlir.pipeline.notifier`` is the Airflow notifier
that calls it.

The deployment sets ``XLIR_ALERT_WEBHOOK_URL`` (an http(s) URL; declared in ``xlir.stack.env``);
unset, nothing is sent. The body is JSON: a one-line ``text`` (what chat webhooks show) and the
decision's fields: model, version, decision, failed gates, headline deltas against the champion it
was gated on, and links to the MLflow run and version and the Airflow run. Sending never raises: a
webhook that fails or does not answer within ``TIMEOUT`` seconds is logged, and the decision stands
(it is recorded in the registry before any alert).
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from urllib.parse import quote, urlsplit

from xlir.stack.env import ALERT_WEBHOOK_ENV as WEBHOOK_ENV

log = logging.getLogger(__name__)

TIMEOUT = 10.0
EVENTS = {"passed": "promotion", "already-champion": "promotion", "rejected": "rejection"}
"""The promotion statuses that are alerted, and as what (``not-requested``: no decision acted on)."""


def headline_deltas(decision: dict | None) -> dict[str, dict]:
    """Candidate, champion and change of the gating dataset's headline metrics (``HEADLINE`` of
    ``xlir.registry.tracking``), from a ``GateDecision`` dump."""
    from xlir.registry.gates import metric_prefix
    from xlir.registry.tracking import headline_metrics

    if not decision:
        return {}
    prefix = metric_prefix(str((decision.get("gates") or {}).get("dataset", "xquad-r")))
    cand = headline_metrics((decision.get("candidate") or {}).get("metrics") or {}, prefix)
    ref = (decision.get("reference") or {}).get("metrics") or {}
    return {name: {"candidate": c, "champion": ref.get(name), "delta": None if ref.get(name) is None else c - ref[name]}
            for name, c in cand.items()}


def airflow_run_url(base: str, dag_id: str, run_id: str) -> str:
    """The Airflow UI page of a DAG run, or '' without a base URL."""
    if not base or not dag_id or not run_id:
        return ""
    return f"{base.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def decision_alert(promoted: dict | None, *, dag_id: str = "", dag_run_id: str = "", airflow_url: str = "",
                   mlflow_url: str | None = None) -> dict | None:
    """The alert body for the ``promote`` task's return value, or None when there is nothing to alert."""
    from xlir.pipeline.links import model_version_url, run_url

    if not isinstance(promoted, dict) or promoted.get("status") not in EVENTS:
        return None
    event = EVENTS[promoted["status"]]
    model, version = promoted.get("registered_model", ""), promoted.get("version")
    headline = promoted.get("headline") or {}
    links = {"mlflow_run": run_url(promoted, mlflow_url), "mlflow_version": model_version_url(promoted, mlflow_url),
             "airflow_run": airflow_run_url(airflow_url, dag_id, dag_run_id)}
    if event == "promotion":
        what = f"{model} v{version} promoted to champion" + (
            f" (previous champion v{promoted['previous_champion']})" if promoted.get("previous_champion") else "")
    else:
        what = (f"{model} v{version} rejected by the gates ({', '.join(promoted.get('failed') or []) or 'no check named'}); "
                f"champion stays v{promoted.get('champion')}")
    from xlir.registry.report import COLUMNS, LOWER_IS_BETTER, format_delta

    labels = dict(COLUMNS)
    deltas = []  # each change worded as the gate report words it (digits by value, ▲/▼)
    for name, h in headline.items():
        if h.get("delta") is None:
            continue
        metric = name.split(".", 1)[1]
        row = {"candidate": h["candidate"], "reference": h["champion"], "lower_is_better": metric in LOWER_IS_BETTER}
        deltas.append(f"{labels.get(metric, name)} {format_delta(row)}")
    text = what + (": " + ", ".join(deltas) if deltas else "") + "".join(
        f" | {k}: {v}" for k, v in (("MLflow", links["mlflow_version"] or links["mlflow_run"]),
                                    ("Airflow", links["airflow_run"])) if v)
    return {"text": text, "event": event, "model": model, "version": version,
            "decision": "rejected" if event == "rejection" else "passed", "status": promoted["status"],
            "champion": promoted.get("champion"), "previous_champion": promoted.get("previous_champion"),
            "failed_gates": list(promoted.get("failed") or []), "message": promoted.get("message", ""),
            "headline": headline, "links": links, "dag_id": dag_id, "dag_run_id": dag_run_id}


def _where(url: str) -> str:
    """A webhook URL without its path and query, which often carry its secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def send_alert(body: dict, url: str | None = None, timeout: float = TIMEOUT) -> bool:
    """POST ``body`` as JSON to ``url`` (default ``$XLIR_ALERT_WEBHOOK_URL``); True when it answered 2xx.
    Unset: nothing is sent. Never raises: a failure is logged as an error."""
    url = (os.environ.get(WEBHOOK_ENV, "") if url is None else url).strip()
    if not url:
        log.info("%s is not set: no alert sent for %s", WEBHOOK_ENV, body.get("text", "the decision"))
        return False
    if not url.startswith(("http://", "https://")):
        log.error("%s is not an http(s) URL: no alert sent; the decision stands", WEBHOOK_ENV)
        return False
    req = urllib.request.Request(url, data=json.dumps(body, default=str).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "User-Agent": "xlir-alerts"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            ok = 200 <= r.status < 300
    except (OSError, ValueError) as e:  # refused, timed out, an HTTP error status, a malformed URL
        log.error("alert webhook %s failed (%s): the %s of %s v%s was not announced; the decision stands (recorded "
                  "in the registry)", _where(url), e, body.get("event"), body.get("model"), body.get("version"))
        return False
    if not ok:
        log.error("alert webhook %s answered %s: the alert may not have arrived; the decision stands", _where(url), r.status)
    return ok


__all__ = ["EVENTS", "TIMEOUT", "WEBHOOK_ENV", "airflow_run_url", "decision_alert", "headline_deltas",
           "send_alert"]
