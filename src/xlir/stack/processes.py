"""Start, stop and inspect the local stack, each process by its pid.

Services (each its own process group, pid file ``STATE/pids/<name>.pid``, log ``STATE/logs/<name>.log``):

* ``mlflow``: ``mlflow server`` (SQLite backend ``STATE/mlflow/mlflow.db``, artifacts in
  ``STATE/mlflow/artifacts``, one worker, job execution off);
* ``api-server``, ``scheduler``, ``dag-processor``, ``triggerer``: Airflow 3 as separate
  processes (never ``airflow standalone``), SQLite metadata DB, LocalExecutor, parallelism 2;
* with ``db="postgres"`` (``XLIR_DB=postgres``), ``postgres`` first (``xlir.stack.postgres``):
  Airflow's metadata DB and MLflow's backend store live there instead of SQLite.

Everything binds to 127.0.0.1: the scheduler and triggerer run with ``--skip-serve-logs``
(Airflow's log server listens on every interface and cannot be told otherwise), so the API
server reads task logs from ``STATE/airflow/logs`` directly. The admin password is generated
on the first ``up``, printed once and kept in ``STATE/airflow/passwords.json`` (mode 0600).
``down`` stops exactly the process groups whose pids it wrote, checking each pid still runs
the command it started (a recycled pid is never signalled).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from xlir.errors import XlirError
from xlir.paths import REPO_ROOT
from xlir.stack.env import airflow_env
from xlir.stack.init import ADMIN, init_airflow

SERVICES = ("mlflow", "api-server", "scheduler", "dag-processor", "triggerer")
ALL_SERVICES = ("postgres", *SERVICES)
DB_MODES = ("sqlite", "postgres")


class StackError(XlirError):
    """The local stack could not be started, reached or stopped."""


def default_state_dir() -> Path:
    return Path(os.environ.get("XLIR_STACK_DIR") or REPO_ROOT / ".xlir" / "stack").expanduser().resolve()


def _free_port(preferred: int) -> int:
    import socket

    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise StackError("no free port on 127.0.0.1")


def _http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return 200 <= r.status < 300
    except OSError:
        return False


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _group_pids(pgid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


@dataclass
class ServiceStatus:
    name: str
    pid: int | None
    running: bool
    url: str
    log: str

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class LocalStack:
    """The stack whose state (ports, pids, logs, DBs, data folders) lives under ``state_dir``."""

    def __init__(self, state_dir: str | Path | None = None, *, mlflow_port: int = 5000, api_port: int = 8080,
                 parallelism: int = 2, db: str | None = None, postgres_port: int = 5432):
        self.state = Path(state_dir).expanduser().resolve() if state_dir else default_state_dir()
        self.parallelism = parallelism
        self.db = (db or os.environ.get("XLIR_DB") or "sqlite").strip().lower()
        if self.db not in DB_MODES:
            raise StackError(f"XLIR_DB={self.db!r}: the local stack's database is one of {', '.join(DB_MODES)}")
        self._preferred = {"mlflow": mlflow_port, "api": api_port, "postgres": postgres_port}

    @property
    def services(self) -> tuple[str, ...]:
        return ALL_SERVICES if self.db == "postgres" else SERVICES

    @property
    def postgres(self):
        from xlir.stack.postgres import LocalPostgres

        return LocalPostgres(self.state / "postgres", self.ports()["postgres"])

    # -- layout

    @property
    def home(self) -> Path:
        return self.state / "airflow"

    @property
    def passwords_file(self) -> Path:
        return self.home / "passwords.json"

    def data_dir(self, name: str) -> Path:
        return self.state / "data" / name

    def pid_file(self, name: str) -> Path:
        return self.state / "pids" / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.state / "logs" / f"{name}.log"

    def ports(self) -> dict[str, int]:
        """Ports chosen on the first ``up`` (preferred ones when free), kept in ``STATE/ports.json``."""
        path = self.state / "ports.json"
        ports = json.loads(path.read_text()) if path.is_file() else {}
        wanted = ("mlflow", "api", "postgres") if self.db == "postgres" else ("mlflow", "api")
        if all(k in ports for k in wanted):
            return ports
        self.state.mkdir(parents=True, exist_ok=True)
        for k in wanted:
            ports.setdefault(k, _free_port(self._preferred[k]))
        path.write_text(json.dumps(ports))
        return ports

    @property
    def mlflow_uri(self) -> str:
        return f"http://127.0.0.1:{self.ports()['mlflow']}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports()['api']}"

    def env(self) -> dict[str, str]:
        """The environment of every Airflow process (and of CLI calls against this stack)."""
        extra = {
            "XLIR_LANDING_DIR": str(self.data_dir("landing")),
            "XLIR_STORE_DIR": str(self.data_dir("store")),
            "XLIR_QUARANTINE_DIR": str(self.data_dir("quarantine")),
            "XLIR_PIPELINE_DIR": str(self.data_dir("pipeline")),
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
            "TOKENIZERS_PARALLELISM": "false",
        }
        conn = self.postgres.url("airflow") if self.db == "postgres" else None
        return {**os.environ, **airflow_env(self.home, parallelism=self.parallelism, api_port=self.ports()["api"],
                                            mlflow_uri=self.mlflow_uri, admin=ADMIN, sql_alchemy_conn=conn,
                                            passwords_file=self.passwords_file, extra=extra)}

    # -- processes

    def pid(self, name: str) -> int | None:
        """The pid of a running service started by this stack, else None (stale pid files are removed)."""
        f = self.pid_file(name)
        try:
            pid, token = f.read_text().split(maxsplit=1)
            pid = int(pid)
        except (OSError, ValueError):
            return None
        cmd = _cmdline(pid)
        if token.strip() in cmd or token.split()[0] in cmd:  # Airflow may retitle its processes
            return pid
        f.unlink(missing_ok=True)
        return None

    def _commands(self) -> dict[str, list[str]]:
        af = [sys.executable, "-m", "airflow"]
        root = self.state / "mlflow"
        backend = self.postgres.url("mlflow") if self.db == "postgres" else f"sqlite:///{root / 'mlflow.db'}"
        return {
            "mlflow": [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
                       "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1",
                       "--port", str(self.ports()["mlflow"]), "--workers", "1"],
            "api-server": [*af, "api-server", "--host", "127.0.0.1", "--port", str(self.ports()["api"]), "--workers", "1"],
            "scheduler": [*af, "scheduler", "--skip-serve-logs"],
            "dag-processor": [*af, "dag-processor"],
            "triggerer": [*af, "triggerer", "--skip-serve-logs"],
        }

    def _spawn(self, name: str, cmd: list[str], env: dict, **popen) -> int:
        for d in (self.pid_file(name).parent, self.log_file(name).parent):
            d.mkdir(parents=True, exist_ok=True)
        with open(self.log_file(name), "ab") as log:
            p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                 cwd=self.state, start_new_session=True, **popen)
        token = {"mlflow": "mlflow server", "postgres": "postgres -D"}.get(name, f"airflow {name}")
        self.pid_file(name).write_text(f"{p.pid} {token}\n")
        return p.pid

    def _init_airflow(self, env: dict, echo) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        migrate = self.db == "postgres" or not (self.home / "airflow.db").is_file()
        init_airflow(env, migrate=migrate, echo=echo, cwd=self.state)

    def _start_postgres(self, echo, timeout: float) -> None:
        pg = self.postgres
        if self.pid("postgres") is None:
            if not pg.initialised():
                pg.init(echo)
            env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AIRFLOW"))}
            self._spawn("postgres", pg.command(), env, **pg.popen_kwargs())
        pg.wait_ready(lambda: self.pid("postgres") is not None, timeout)
        pg.ensure_databases()

    def _check_mode(self) -> None:
        """One database mode per running stack: switching needs a ``down`` first."""
        f = self.state / "db-mode"
        running = [s for s in SERVICES if self.pid(s) is not None]
        if f.is_file() and f.read_text().strip() != self.db and running:
            raise StackError(f"the stack runs with XLIR_DB={f.read_text().strip()} ({', '.join(running)}); "
                             f"stop it (`xlir stack down`) before starting it with XLIR_DB={self.db}")
        self.state.mkdir(parents=True, exist_ok=True)
        f.write_text(self.db + "\n")

    def up(self, echo=print, timeout: float = 180.0) -> list[ServiceStatus]:
        """Start every service that is not running; wait until MLflow and the API server answer."""
        for d in ("landing", "store", "quarantine", "pipeline"):
            self.data_dir(d).mkdir(parents=True, exist_ok=True)
        self._check_mode()
        if self.db == "postgres":
            self._start_postgres(echo, timeout)
        env = self.env()
        cmds = self._commands()
        if self.pid("mlflow") is None:
            (self.state / "mlflow").mkdir(parents=True, exist_ok=True)
            self._spawn("mlflow", cmds["mlflow"], {**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
        self._init_airflow(env, echo)
        for name in SERVICES[1:]:
            if self.pid(name) is None:
                self._spawn(name, cmds[name], env)
        self._wait(f"{self.mlflow_uri}/health", "mlflow", timeout)
        self._wait(f"{self.api_url}/api/v2/monitor/health", "api-server", timeout)
        return self.status()

    def _wait(self, url: str, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _http_ok(url):
                return
            if self.pid(name) is None:
                raise StackError(f"{name} exited during start; see {self.log_file(name)}")
            time.sleep(1.0)
        raise StackError(f"{name} not answering {url} after {timeout:.0f} s; see {self.log_file(name)}")

    def stop_service(self, name: str, timeout: float = 30.0) -> bool:
        """Stop a service by its pid: SIGTERM to its process group (PostgreSQL: SIGINT to the server,
        its fast shutdown), SIGKILL to what is left after ``timeout``; True if it ran."""
        pid = self.pid(name)
        if pid is None:
            return False
        try:
            if name == "postgres":
                os.kill(pid, signal.SIGINT)
            else:
                os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _group_pids(pid):
            time.sleep(0.5)
        if _group_pids(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            time.sleep(0.5)
        self.pid_file(name).unlink(missing_ok=True)
        return True

    def down(self, echo=print) -> list[str]:
        """Stop every service (Airflow first, then MLflow, PostgreSQL last, whatever the mode it was
        started in); returns the names that were running."""
        stopped = []
        for name in reversed(ALL_SERVICES):
            if self.stop_service(name):
                echo(f"stopped {name}")
                stopped.append(name)
        return stopped

    def status(self) -> list[ServiceStatus]:
        ports = json.loads((self.state / "ports.json").read_text()) if (self.state / "ports.json").is_file() else {}
        urls = {"mlflow": f"http://127.0.0.1:{ports['mlflow']}" if "mlflow" in ports else "",
                "api-server": f"http://127.0.0.1:{ports['api']}" if "api" in ports else "",
                "postgres": f"postgresql://127.0.0.1:{ports['postgres']}" if "postgres" in ports else ""}
        out = []
        for name in ALL_SERVICES:
            pid = self.pid(name)
            if name in self.services or pid is not None:
                out.append(ServiceStatus(name, pid, pid is not None, urls.get(name, ""), str(self.log_file(name))))
        return out

    def processes(self) -> list[int]:
        """Every pid of every running service's process group."""
        return [p for name in ALL_SERVICES if (pid := self.pid(name)) for p in _group_pids(pid)]
