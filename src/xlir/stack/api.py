"""A small client of the Airflow 3 REST API (v2) with SimpleAuthManager tokens (stdlib only)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request

from xlir.errors import XlirError

TERMINAL = {"success", "failed"}


class AirflowAPIError(XlirError):
    """The Airflow API refused a request or did not answer."""


class AirflowAPI:
    def __init__(self, base_url: str, username: str, password: str, timeout: float = 30.0):
        self.base = base_url.rstrip("/")
        self.username, self.password, self.timeout = username, password, timeout
        self._token: str | None = None

    def _raw(self, method: str, path: str, body=None, auth: bool = True):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if auth:
            req.add_header("Authorization", f"Bearer {self.token()}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                text = r.read().decode()
                return json.loads(text) if text else None
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")[:1000]
            raise AirflowAPIError(f"{method} {path}: HTTP {e.code}: {detail}") from None
        except OSError as e:
            raise AirflowAPIError(f"{method} {self.base}{path}: {e}") from None

    def token(self) -> str:
        if self._token is None:
            out = self._raw("POST", "/auth/token", {"username": self.username, "password": self.password}, auth=False)
            self._token = out["access_token"]
        return self._token

    def get(self, path: str, **query):
        q = ("?" + urllib.parse.urlencode(query, doseq=True)) if query else ""
        return self._raw("GET", path + q)

    def dag(self, dag_id: str) -> dict | None:
        try:
            return self.get(f"/api/v2/dags/{dag_id}")
        except AirflowAPIError as e:
            if "HTTP 404" in str(e):
                return None
            raise

    def wait_for_dag(self, dag_id: str, timeout: float = 180.0) -> dict:
        """Until the dag-processor has parsed ``dag_id``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            d = self.dag(dag_id)
            if d is not None:
                return d
            time.sleep(2.0)
        raise AirflowAPIError(f"DAG {dag_id} not known to the API after {timeout:.0f} s (dag-processor log?)")

    def unpause(self, dag_id: str) -> dict:
        return self._raw("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def set_pool_slots(self, pool: str, slots: int) -> dict:
        """Resize a pool (0 holds every task that needs it in ``scheduled``)."""
        return self._raw("PATCH", f"/api/v2/pools/{urllib.parse.quote(pool, safe='')}",
                         {"name": pool, "slots": slots, "include_deferred": False})

    def trigger(self, dag_id: str, conf: dict | None = None) -> dict:
        return self._raw("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})

    def run(self, dag_id: str, run_id: str) -> dict:
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}")

    def runs(self, dag_id: str, limit: int = 20) -> list[dict]:
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns", order_by="-run_after", limit=limit)["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        rid = urllib.parse.quote(run_id, safe="")
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns/{rid}/taskInstances")["task_instances"]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1):
        rid = urllib.parse.quote(run_id, safe="")
        try:
            out = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{rid}/taskInstances/{task_id}/xcomEntries/{key}",
                           map_index=map_index, deserialize="true")
        except AirflowAPIError:
            return None
        value = out.get("value")
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def follow(self, dag_id: str, run_id: str, echo=print, poll: float = 5.0, timeout: float = 3600.0,
               detail=None, detail_every: float = 30.0) -> dict:
        """Poll a run to a terminal state, printing one line per task whenever its state changes
        (``detail(task_instance)`` adds a note, e.g. training steps, at most every ``detail_every`` s)."""
        start = time.monotonic()
        deadline = start + timeout
        seen: dict[tuple, tuple[str, str]] = {}  # by (task id, map index): the label may change once rendered
        printed_at: dict[tuple, float] = {}
        echo(f"{dag_id} run {run_id}")
        while time.monotonic() < deadline:
            run = self.run(dag_id, run_id)
            tis = self.task_instances(dag_id, run_id)
            now = time.monotonic()
            for t in sorted(tis, key=lambda t: (t.get("start_date") or "~", t["task_id"], t.get("map_index", -1))):
                key = (t["task_id"], t.get("map_index", -1))
                state = t.get("state") or "none"
                note = (detail(t) or "") if detail and state == "running" else ""
                before = seen.get(key)
                if before is None and state == "none":
                    continue
                if before is not None and before[0] == state and (before[1] == note or now - printed_at[key] < detail_every):
                    continue
                seen[key], printed_at[key] = (state, note), now
                took = f" in {t['duration']:.0f} s" if state in TERMINAL | {"skipped", "upstream_failed"} and t.get("duration") else ""
                elapsed = int(now - start)
                echo(f"  {elapsed // 60:02d}:{elapsed % 60:02d}  {task_label(t):28} {state}{took}{'  ' + note if note else ''}")
            if run["state"] in TERMINAL:
                return run
            time.sleep(poll)
        raise AirflowAPIError(f"{dag_id} run {run_id} not finished after {timeout:.0f} s")


def task_label(t: dict) -> str:
    """``task_id`` or ``task_id[map index]`` (with the rendered map index when there is one)."""
    idx = t.get("map_index", -1)
    if idx is None or idx < 0:
        return t["task_id"]
    return f"{t['task_id']}[{t.get('rendered_map_index') or idx}]"
