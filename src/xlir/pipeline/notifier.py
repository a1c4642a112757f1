"""The Airflow notifier of gate decisions: the ``promote`` task's ``on_success_callback``.

It reads the task's return value (``xlir.pipeline.tasks.promote``), builds the alert
(``xlir.pipeline.alerts.decision_alert``) with the Airflow run's link, and posts it to the
deployment's webhook (``XLIR_ALERT_WEBHOOK_URL``; unset: nothing sent). A callback runs after the
task succeeded and after its decision was recorded: nothing here can fail the task or change the
decision; a failure is logged in the task's log.
"""

from __future__ import annotations

from airflow.sdk.bases.notifier import BaseNotifier


class DecisionNotifier(BaseNotifier):
    """Posts the promotion or rejection the task returned (``alerts.send_alert``)."""

    template_fields = ()

    def __init__(self, webhook_url: str | None = None, timeout: float | None = None):
        super().__init__()
        self.webhook_url, self.timeout = webhook_url, timeout  # default: $XLIR_ALERT_WEBHOOK_URL, alerts.TIMEOUT

    def notify(self, context) -> None:
        from xlir.pipeline import alerts

        try:
            ti = context["ti"]
            body = alerts.decision_alert(ti.xcom_pull(task_ids=ti.task_id), dag_id=ti.dag_id, dag_run_id=ti.run_id,
                                         airflow_url=_airflow_ui_url())
            if body is None:
                self.log.info("no gate decision acted on: no alert")
                return
            alerts.send_alert(body, self.webhook_url, self.timeout or alerts.TIMEOUT)
        except Exception:  # noqa: BLE001 - an alert must never fail the task nor hide the decision
            self.log.exception("the gate decision's alert could not be prepared; the decision stands")


def _airflow_ui_url() -> str:
    """Airflow's UI base URL (``[api] base_url``), or ''."""
    try:
        from airflow.configuration import conf

        return conf.get("api", "base_url", fallback="") or ""
    except Exception:  # noqa: BLE001
        return ""


__all__ = ["DecisionNotifier"]
