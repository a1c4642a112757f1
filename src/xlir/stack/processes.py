"""Start, stop and inspect the local stack, each process by its pid.

Services (each its own process group, pid file ``STATE/pids/<name>.pid``, log ``STATE/logs/<name>.log``):

* ``mlflow``: ``mlflow server --app-name basic-auth`` (SQLite backend ``STATE/mlflow/mlflow.db``,
  artifacts in ``STATE/mlflow/artifacts``, one worker, job execution off). Anonymous requests are
  refused; the admin password is generated on the first ``up``, printed once and kept in
  ``STATE/mlflow/auth/admin.password``; the pipeline's own user ``xlir`` (``xlir.stack.mlflow_auth``)
  has its password in ``STATE/mlflow/auth/xlir.password`` (all mode 0600), and the Airflow
  processes get it by environment;
* ``api-server``, ``scheduler``, ``dag-processor``, ``triggerer``: Airflow 3 as separate
  processes (never ``airflow standalone``), SQLite metadata DB, LocalExecutor, parallelism 2;
* with ``db="postgres"`` (``XLIR_DB=postgres``), ``postgres`` first (``xlir.stack.postgres``):
  Airflow's metadata DB and MLflow's backend store (and its users) live there instead of SQLite,
  each database owned by its own unprivileged role. MLflow's URL on its command line holds no
  password: the server gets it as ``PGPASSWORD``;
* with ``executor="celery"`` (``XLIR_EXECUTOR=celery``; PostgreSQL implied), ``redis`` as Celery's
  broker (``xlir.stack.redis``: 127.0.0.1, a password from a 0600 file, its append-only file under
  ``STATE/redis``), the CeleryExecutor in every Airflow process, and Celery workers as separate
  processes: ``worker-default-1`` .. ``worker-default-N`` for the ``default`` queue (one task at a
  time each; ``workers=N``) and ``worker-training`` for the training queue (train and evaluate,
  one task at a time). A worker's tasks record ``<worker name>@<host>`` as their hostname (Celery's
  node name), so the task-instance rows say which worker ran what.

Everything binds to 127.0.0.1: the scheduler and triggerer run with ``--skip-serve-logs``
(Airflow's log server listens on every interface and cannot be told otherwise), so the API
server reads task logs from ``STATE/airflow/logs`` directly. The admin password is generated
on the first ``up``, printed once and kept in ``STATE/airflow/passwords.json`` (mode 0600).
No secret is ever on a command line (``/proc/PID/cmdline`` is world-readable): passwords go by
environment (readable only by the same user) or by 0600 file.

Each pid file records the pid with the process's start time (``/proc/PID/stat``, clock ticks since
boot) and the boot id. ``down`` stops exactly the process groups whose pids it wrote, and only
while that pid is still the process it started: a recycled pid (another process, whatever its
command line says) is never signalled. A pid file written before start times were recorded
(``PID name``) counts only for a process that also runs in the stack's own folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from xlir.errors import XlirError
from xlir.net import free_port, http_ok, wait_until
from xlir.paths import REPO_ROOT
from xlir.stack.env import DEFAULT_QUEUE, TRAIN_QUEUE, airflow_env, celery_env
from xlir.stack.init import ADMIN, init_airflow
from xlir.stack.mlflow_auth import (
    ADMIN as MLFLOW_ADMIN,
    PIPELINE_USER,
    MlflowAuthError,
    auth_ini,
    check_auth_app,
    ensure_pipeline_user,
    request,
    secret_file,
    server_env,
    write_private,
)

SERVICES = ("mlflow", "api-server", "scheduler", "dag-processor", "triggerer")
ALL_SERVICES = ("postgres", "redis", *SERVICES)
DB_MODES = ("sqlite", "postgres")
EXECUTORS = ("local", "celery")
TRAIN_WORKER = "worker-training"
WORKER_HOSTNAME = "xlir.stack.env.worker_hostname"


def default_worker(i: int) -> str:
    return f"worker-default-{i}"


class StackError(XlirError):
    """The local stack could not be started, reached or stopped."""


def default_state_dir() -> Path:
    return Path(os.environ.get("XLIR_STACK_DIR") or REPO_ROOT / ".xlir" / "stack").expanduser().resolve()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def start_time(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (field 22 of ``/proc/PID/stat``), or None
    when no such process runs (a zombie, dead but not yet reaped by its parent, does not run).
    A pid can be reused; a (pid, start time) pair cannot, within a boot."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:  # the command name (field 2) may hold spaces and parentheses: count from the last ")"
        fields = stat[stat.rindex(")") + 2:].split()
        return None if fields[0] == "Z" else int(fields[19])
    except (ValueError, IndexError):
        return None


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _cwd(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def _group_pids(pgid: int) -> list[int]:
    """The live processes of a process group (zombies left for their parent to reap are not)."""
    out = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split() if start_time(int(x)) is not None]


def _reap(pid: int) -> None:
    """Collect the exit status of a service this process started itself (else it stays a zombie)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


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
                 parallelism: int = 2, db: str | None = None, postgres_port: int = 5432, executor: str | None = None,
                 workers: int = 1, redis_port: int = 6379):
        self.state = Path(state_dir).expanduser().resolve() if state_dir else default_state_dir()
        self.executor = (executor or os.environ.get("XLIR_EXECUTOR") or "local").strip().lower()
        if self.executor not in EXECUTORS:
            raise StackError(f"XLIR_EXECUTOR={self.executor!r}: the local stack's executor is one of {', '.join(EXECUTORS)}")
        db = (db or os.environ.get("XLIR_DB") or ("postgres" if self.executor == "celery" else "sqlite")).strip().lower()
        if db not in DB_MODES:
            raise StackError(f"XLIR_DB={db!r}: the local stack's database is one of {', '.join(DB_MODES)}")
        if self.executor == "celery" and db != "postgres":
            raise StackError(f"XLIR_EXECUTOR=celery needs XLIR_DB=postgres (Celery workers share Airflow's metadata DB "
                             f"and its result backend; SQLite is one process's), not {db}")
        if workers < 1:
            raise StackError(f"--workers {workers}: at least one worker for the default queue")
        self.db, self.workers = db, workers
        # Celery: every worker may have a task in flight at once (the training worker's included)
        self.parallelism = max(parallelism, workers + 1) if self.executor == "celery" else parallelism
        self._preferred = {"mlflow": mlflow_port, "api": api_port, "postgres": postgres_port, "redis": redis_port}

    @property
    def services(self) -> tuple[str, ...]:
        """This mode's services, in start order."""
        backends = {"sqlite": (), "postgres": ("postgres",)}[self.db] + (("redis",) if self.executor == "celery" else ())
        return (*backends, *SERVICES, *self.worker_names())

    def worker_names(self) -> tuple[str, ...]:
        """This mode's Celery workers (none with the LocalExecutor)."""
        if self.executor != "celery":
            return ()
        return (*(default_worker(i) for i in range(1, self.workers + 1)), TRAIN_WORKER)

    def _started_workers(self) -> list[str]:
        """Workers with a pid file (whatever mode or worker count they were started with)."""
        return sorted(p.stem for p in (self.state / "pids").glob("worker-*.pid"))

    @property
    def redis(self):
        from xlir.stack.redis import LocalRedis

        return LocalRedis(self.state / "redis", self.ports()["redis"])

    @property
    def postgres(self):
        from xlir.stack.postgres import LocalPostgres

        return LocalPostgres(self.state / "postgres", self.ports()["postgres"])

    # -- layout

    @property
    def home(self) -> Path:
        return self.state / "airflow"

    @property
    def mlflow_dir(self) -> Path:
        return self.state / "mlflow"

    mlflow_user = PIPELINE_USER

    def mlflow_password_file(self, user: str) -> Path:
        """``STATE/mlflow/auth/<user>.password`` (mode 0600): ``admin`` or the pipeline's ``xlir``."""
        return self.mlflow_dir / "auth" / f"{user}.password"

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
        wanted = ("mlflow", "api") + (("postgres",) if self.db == "postgres" else ()) + (
            ("redis",) if self.executor == "celery" else ())
        if all(k in ports for k in wanted):
            return ports
        self.state.mkdir(parents=True, exist_ok=True)
        for k in wanted:
            ports.setdefault(k, free_port(self._preferred[k]))
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
        if self.executor == "celery":
            extra.update(celery_env(self.redis.url(), "db+" + conn, worker_concurrency=1))
        password, _ = secret_file(self.mlflow_password_file(self.mlflow_user))
        return {**os.environ, **airflow_env(self.home, parallelism=self.parallelism, api_port=self.ports()["api"],
                                            mlflow_uri=self.mlflow_uri, admin=ADMIN, sql_alchemy_conn=conn,
                                            passwords_file=self.passwords_file, extra=extra,
                                            mlflow_username=self.mlflow_user, mlflow_password=password)}

    def mlflow_client_env(self) -> dict[str, str]:
        """What MLflow's client needs to work on this stack as the pipeline user."""
        env = self.env()
        return {k: env[k] for k in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}

    def mlflow_server_env(self, echo=print) -> dict[str, str]:
        """The MLflow server's environment: its auth app's settings (secrets generated into 0600 files
        the first time, the admin password printed once), ``PGPASSWORD`` in PostgreSQL mode, and
        none of Airflow's settings or the pipeline's credentials."""
        check_auth_app()
        auth = self.mlflow_dir / "auth"
        auth.mkdir(parents=True, exist_ok=True)
        os.chmod(auth, 0o700)
        admin_file = self.mlflow_password_file(MLFLOW_ADMIN)
        admin_password, generated = secret_file(admin_file)
        if generated:
            echo(f"MLflow admin password (shown once, kept in {admin_file}, mode 0600): {admin_password}")
        secret_file(self.mlflow_password_file(self.mlflow_user))
        key, _ = secret_file(auth / "flask-secret-key", 32)
        db = self.postgres.url("mlflow", password=False) if self.db == "postgres" else f"sqlite:///{auth / 'basic_auth.db'}"
        write_private(auth / "basic_auth.ini", auth_ini(db))
        env = self._server_base_env("MLFLOW_TRACKING_")
        env.update(server_env(auth / "basic_auth.ini", admin_password, key))
        env.update(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", NO_PROXY="127.0.0.1,localhost")
        if self.db == "postgres":
            env["PGPASSWORD"] = self.postgres.password("mlflow")
        return env

    @staticmethod
    def _server_base_env(*drop: str) -> dict[str, str]:
        """This process's environment for a server: without Airflow's settings, PostgreSQL's client
        variables or the prefixes in ``drop``."""
        return {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AIRFLOW", *drop))}

    def _start_mlflow(self, echo) -> None:
        self.mlflow_dir.mkdir(parents=True, exist_ok=True)
        self._spawn("mlflow", self._commands()["mlflow"], self.mlflow_server_env(echo))

    def _mlflow_open(self) -> bool:
        """True when the running MLflow answers an anonymous request (started without authentication)."""
        try:
            status, _ = request(self.mlflow_uri, "GET", "/api/2.0/mlflow/experiments/search", query={"max_results": 1},
                                timeout=10)
        except MlflowAuthError:
            return False
        return status == 200

    def _ensure_pipeline_user(self, echo) -> None:
        """The pipeline's MLflow user exists, with its password from its file and its permissions."""
        admin_password, _ = secret_file(self.mlflow_password_file(MLFLOW_ADMIN))
        password, _ = secret_file(self.mlflow_password_file(self.mlflow_user))
        if ensure_pipeline_user(self.mlflow_uri, admin_password, password, user=self.mlflow_user):
            echo(f"MLflow user {self.mlflow_user!r} created for the pipeline (password in "
                 f"{self.mlflow_password_file(self.mlflow_user)}, mode 0600)")

    # -- processes

    def pid(self, name: str) -> int | None:
        """The pid of a running service started by this stack, else None (stale pid files are removed).

        The process must be the very one ``_spawn`` started: same pid, same start time, same boot.
        A pid reused by another process (even one whose command line names airflow or mlflow) is not."""
        f = self.pid_file(name)
        try:
            text = f.read_text()
        except OSError:
            return None
        try:
            rec = json.loads(text)
            pid, ours = int(rec["pid"]), (rec.get("start") is not None and start_time(int(rec["pid"])) == rec["start"]
                                          and rec.get("boot", "") == boot_id())
        except (ValueError, KeyError, TypeError):
            ours, pid = self._legacy_pid(text)
        if ours:
            return pid
        f.unlink(missing_ok=True)
        return None

    def _legacy_pid(self, text: str) -> tuple[bool, int | None]:
        """A pid file of the older ``PID name`` format: the process must run the named command and
        run in this stack's folder (where ``_spawn`` starts every service; PostgreSQL moves to its data)."""
        try:
            pid_s, token = text.split(maxsplit=1)
            pid = int(pid_s)
        except ValueError:
            return False, None
        cmd = _cmdline(pid)
        named = token.strip() in cmd or token.split()[0] in cmd  # Airflow may retitle its processes
        return named and _cwd(pid) in (self.state, self.state / "postgres" / "data"), pid

    def _commands(self) -> dict[str, list[str]]:
        """Every service's command line: nothing secret in any (passwords go by environment)."""
        af = [sys.executable, "-m", "airflow"]
        root = self.mlflow_dir
        backend = self.postgres.url("mlflow", password=False) if self.db == "postgres" else f"sqlite:///{root / 'mlflow.db'}"
        return {
            "mlflow": [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth", "--backend-store-uri", backend,
                       "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1",
                       "--port", str(self.ports()["mlflow"]), "--workers", "1"],
            "api-server": [*af, "api-server", "--host", "127.0.0.1", "--port", str(self.ports()["api"]), "--workers", "1"],
            "scheduler": [*af, "scheduler", "--skip-serve-logs"],
            "dag-processor": [*af, "dag-processor"],
            "triggerer": [*af, "triggerer", "--skip-serve-logs"],
            **{name: self._worker_command(name) for name in self.worker_names()},
        }

    def _worker_command(self, name: str) -> list[str]:
        """``airflow celery worker`` for one queue, one task at a time, named ``<name>@<host>``, without
        its log server (it would listen on every interface; the API server reads the log files)."""
        queue = TRAIN_QUEUE if name == TRAIN_WORKER else DEFAULT_QUEUE
        return [sys.executable, "-m", "airflow", "celery", "worker", "--queues", queue, "--concurrency", "1",
                "--celery-hostname", f"{name}@%h", "--skip-serve-logs"]

    def _env_for(self, name: str, env: dict[str, str]) -> dict[str, str]:
        """A service's environment: a worker's also names it, for the hostname its tasks record."""
        if not name.startswith("worker-"):
            return env
        return {**env, "XLIR_WORKER_NAME": name, "AIRFLOW__CORE__HOSTNAME_CALLABLE": WORKER_HOSTNAME}

    def _spawn(self, name: str, cmd: list[str], env: dict, **popen) -> int:
        for d in (self.pid_file(name).parent, self.log_file(name).parent):
            d.mkdir(parents=True, exist_ok=True)
        with open(self.log_file(name), "ab") as log:
            p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                 cwd=self.state, start_new_session=True, **popen)
        record = {"pid": p.pid, "start": start_time(p.pid), "boot": boot_id(), "cmd": cmd}
        self.pid_file(name).write_text(json.dumps(record) + "\n")
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
            self._spawn("postgres", pg.command(), self._server_base_env(), **pg.popen_kwargs())
        pg.wait_ready(lambda: self.pid("postgres") is not None, timeout)
        pg.ensure_databases()

    def _start_redis(self, timeout: float) -> None:
        redis = self.redis
        if self.pid("redis") is None:
            redis.prepare()
            self._spawn("redis", redis.command(), self._server_base_env("REDIS"), **redis.popen_kwargs())
        redis.wait_ready(lambda: self.pid("redis") is not None, timeout)

    def start(self, name: str, timeout: float = 60.0) -> int:
        """Start one Airflow service, Celery worker or Redis again (when it is not running); its pid."""
        if name == "redis":
            self._start_redis(timeout)
        elif self.pid(name) is None:
            if name not in self.services or name in ("postgres", "mlflow"):
                raise StackError(f"{name}: not a service `start` restarts alone in this mode ({', '.join(self.services)})")
            self._spawn(name, self._commands()[name], self._env_for(name, self.env()))
        return self.pid(name)

    def _check_mode(self) -> None:
        """One database mode and one executor per running stack: switching needs a ``down`` first."""
        running = [s for s in SERVICES if self.pid(s) is not None]
        self.state.mkdir(parents=True, exist_ok=True)
        for file, var, value in (("db-mode", "XLIR_DB", self.db), ("executor", "XLIR_EXECUTOR", self.executor)):
            f = self.state / file
            before = f.read_text().strip() if f.is_file() else ("local" if file == "executor" else value)
            if before != value and running:
                raise StackError(f"the stack runs with {var}={before} ({', '.join(running)}); "
                                 f"stop it (`xlir stack down`) before starting it with {var}={value}")
        for file, value in (("db-mode", self.db), ("executor", self.executor)):
            (self.state / file).write_text(value + "\n")

    def up(self, echo=print, timeout: float = 180.0) -> list[ServiceStatus]:
        """Start every service that is not running; wait until MLflow and the API server answer."""
        for d in ("landing", "store", "quarantine", "pipeline"):
            self.data_dir(d).mkdir(parents=True, exist_ok=True)
        self._check_mode()
        if self.db == "postgres":
            self._start_postgres(echo, timeout)
        if self.executor == "celery":
            self._start_redis(timeout)
        if self.pid("mlflow") is not None and self._mlflow_open():
            echo("MLflow runs without authentication (started by an older xlir): restarting MLflow and Airflow "
                 "with it (Airflow's processes get the pipeline's MLflow login)")
            for name in reversed(SERVICES):
                self.stop_service(name)
        env = self.env()
        cmds = self._commands()
        if self.pid("mlflow") is None:
            self._start_mlflow(echo)
        self._init_airflow(env, echo)
        for name in (*SERVICES[1:], *self.worker_names()):
            if self.pid(name) is None:
                self._spawn(name, cmds[name], self._env_for(name, env))
        self._wait(f"{self.mlflow_uri}/health", "mlflow", timeout)
        self._ensure_pipeline_user(echo)
        self._wait(f"{self.api_url}/api/v2/monitor/health", "api-server", timeout)
        return self.status()

    def _wait(self, url: str, name: str, timeout: float) -> None:
        outcome = wait_until(lambda: http_ok(url), lambda: self.pid(name) is not None, timeout, poll=1.0)
        if outcome == "exited":
            raise StackError(f"{name} exited during start; see {self.log_file(name)}")
        if outcome == "timeout":
            raise StackError(f"{name} not answering {url} after {timeout:.0f} s; see {self.log_file(name)}")

    def stop_service(self, name: str, timeout: float = 30.0) -> bool:
        """Stop a service by its pid: SIGTERM to its process group (PostgreSQL: SIGINT to the server,
        its fast shutdown; a Celery worker: its warm shutdown, and its running tasks are signalled),
        SIGKILL to what is left after ``timeout``; True if it ran."""
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
        _reap(pid)
        self.pid_file(name).unlink(missing_ok=True)
        return True

    def down(self, echo=print) -> list[str]:
        """Stop every service (Celery workers first, then Airflow, MLflow, Redis, PostgreSQL last,
        whatever the mode it was started in); returns the names that were running."""
        stopped = []
        for name in (*self._started_workers(), *reversed(ALL_SERVICES)):
            if self.stop_service(name):
                echo(f"stopped {name}")
                stopped.append(name)
        return stopped

    def status(self) -> list[ServiceStatus]:
        ports = json.loads((self.state / "ports.json").read_text()) if (self.state / "ports.json").is_file() else {}
        urls = {"mlflow": f"http://127.0.0.1:{ports['mlflow']}" if "mlflow" in ports else "",
                "api-server": f"http://127.0.0.1:{ports['api']}" if "api" in ports else "",
                "postgres": f"postgresql://127.0.0.1:{ports['postgres']}" if "postgres" in ports else "",
                "redis": f"redis://127.0.0.1:{ports['redis']}" if "redis" in ports else ""}
        urls.update({w: f"queue {TRAIN_QUEUE if w == TRAIN_WORKER else DEFAULT_QUEUE}" for w in self.worker_names()})
        out = []
        for name in dict.fromkeys((*ALL_SERVICES, *self.worker_names(), *self._started_workers())):
            pid = self.pid(name)
            if name in self.services or pid is not None:
                out.append(ServiceStatus(name, pid, pid is not None, urls.get(name, ""), str(self.log_file(name))))
        return out

    def processes(self) -> list[int]:
        """Every pid of every running service's process group."""
        return [p for name in (*ALL_SERVICES, *self._started_workers()) if (pid := self.pid(name))
                for p in _group_pids(pid)]
