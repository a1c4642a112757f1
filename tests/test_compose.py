"""The compose deployment, checked without a Docker engine: the files against the Compose JSON schema
(../shared/data/compose-spec/compose-spec.json) and the invariants of issue 8 (pinned images, health
checks, secrets from .env, loopback ports, one Celery configuration, a worker for the training queue,
the same xlir environment as the local stack) and issue 13 (no CHANGE-ME accepted, no secret on a
command line, MLflow's basic-auth app with the pipeline's own user)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from xlir.paths import REPO_ROOT, shared_data_dirs

COMPOSE_FILES = ("docker-compose.yaml", "docker-compose.gpu.yaml")
VAR = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?P<op>:?[-?])?(?P<arg>[^}]*)\}")


def schema() -> dict:
    for d in shared_data_dirs():
        path = Path(d) / "compose-spec" / "compose-spec.json"
        if path.is_file():
            return json.loads(path.read_text())
    pytest.skip("compose-spec.json not found under the shared data folder (XLIR_DATA_DIR or ../shared/data)")


def load(name: str) -> dict:
    return yaml.safe_load((REPO_ROOT / name).read_text())


def default(value: str) -> str:
    """``value`` with each ``${VAR:-default}`` replaced by its default (what runs when .env says nothing)."""
    return VAR.sub(lambda m: m["arg"] if (m["op"] or "").endswith("-") else f"<{m['name']}>", str(value))


@pytest.fixture(scope="module")
def compose() -> dict:
    return load("docker-compose.yaml")


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def airflow_services(services) -> dict:
    return {n: s for n, s in services.items() if "AIRFLOW__CORE__EXECUTOR" in (s.get("environment") or {})}


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_files_are_valid_against_the_compose_schema(name):
    import jsonschema

    data = load(name)
    jsonschema.Draft7Validator(schema()).validate(data)
    assert not [e.message for e in jsonschema.Draft7Validator(schema()).iter_errors(data)]


def test_the_schema_check_catches_a_broken_file():
    import jsonschema

    broken = load("docker-compose.yaml")
    broken["services"]["redis"]["healthcheck"]["intervall"] = "10s"  # a typo compose would reject
    assert list(jsonschema.Draft7Validator(schema()).iter_errors(broken))


def test_every_image_is_pinned(services):
    for name, s in services.items():
        image = default(s.get("image", ""))
        assert image, f"{name} has no image name"
        repo, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
        assert tag and tag != "latest", f"{name}: image {image!r} is not pinned to a tag"
    for dockerfile in ("Dockerfile", "mlflow/Dockerfile"):
        text = (REPO_ROOT / dockerfile).read_text()
        bases = re.findall(r"^ARG PYTHON_IMAGE=(\S+)", text, re.M)
        assert bases and all(":" in b and not b.endswith(":latest") for b in bases), dockerfile
        assert re.search(r"^USER \S+", text, re.M), f"{dockerfile} runs as root"


def test_the_mlflow_server_image_matches_the_client_version():
    def pins(path):
        return dict(line.split("==", 1) for line in (REPO_ROOT / path).read_text().splitlines()
                    if "==" in line and not line.startswith("#"))

    server, client = pins("mlflow/requirements.txt"), pins("requirements-lock.txt")
    assert server["mlflow"] == client["mlflow"]
    assert {"boto3", "psycopg2-binary"} <= set(server)
    assert "pip install" not in str(load("docker-compose.yaml"))  # nothing installed at container start


def test_long_running_services_have_health_checks_and_one_shots_are_awaited_to_completion(services):
    one_shot = {n for n, s in services.items() if s.get("restart") == "no"}
    assert one_shot == {"config-check", "airflow-init", "minio-init"}
    for name, s in services.items():
        if name not in one_shot:
            assert s.get("healthcheck", {}).get("test"), f"{name} has no health check"
        for dep, spec in (s.get("depends_on") or {}).items():
            assert isinstance(spec, dict) and "condition" in spec, f"{name} -> {dep}: no condition"
            want = "service_completed_successfully" if dep in one_shot else "service_healthy"
            assert spec["condition"] == want, f"{name} -> {dep}: {spec['condition']}"


def test_every_airflow_service_waits_for_its_backends(services):
    for name, s in airflow_services(services).items():
        deps = set(s.get("depends_on") or {})
        assert "postgres" in deps, name
        if name != "airflow-init":
            assert {"redis", "mlflow", "airflow-init"} <= deps, name


def test_secrets_come_from_the_env_file(compose):
    text = (REPO_ROOT / "docker-compose.yaml").read_text()
    required = {m["name"] for m in VAR.finditer(text) if m["op"] == ":?"}
    assert {"POSTGRES_PASSWORD", "REDIS_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "MINIO_ROOT_PASSWORD",
            "AIRFLOW_ADMIN_PASSWORD", "AIRFLOW_DB_PASSWORD", "MLFLOW_DB_PASSWORD", "MLFLOW_ADMIN_PASSWORD",
            "MLFLOW_PIPELINE_PASSWORD", "MLFLOW_FLASK_SECRET_KEY"} <= required
    example = dict(line.split("=", 1) for line in (REPO_ROOT / ".env.example").read_text().splitlines()
                   if "=" in line and not line.startswith("#"))
    assert required <= set(example), f"missing from .env.example: {sorted(required - set(example))}"
    assert all(v == "CHANGE-ME" for k, v in example.items() if re.search(r"PASSWORD|SECRET|FERNET", k))
    every = {m["name"] for f in COMPOSE_FILES for m in VAR.finditer((REPO_ROOT / f).read_text())}
    assert every - {"HOSTNAME"} <= set(example), f"undocumented variables: {sorted(every - set(example))}"
    for name, s in compose["services"].items():  # no literal secret anywhere
        for key, value in (s.get("environment") or {}).items():
            if re.search(r"(PASSWORD|SECRET|FERNET_KEY|ACCESS_KEY(_ID)?|_AUTH)$", key):
                assert VAR.fullmatch(str(value)), f"{name}: {key} is not taken from .env"
            if re.search(r"://[^/]*@", str(value)):  # a URL with credentials
                assert re.search(r"://[^/:]*:\$\{[A-Z_]+:\?", str(value)), f"{name}: {key} has a literal password"
    assert ".env" in (REPO_ROOT / ".gitignore").read_text().split()
    assert ".env" in (REPO_ROOT / ".dockerignore").read_text().split()


def test_ports_are_published_on_loopback_by_default(compose):
    published = [(n, p) for n, s in compose["services"].items() for p in s.get("ports", [])]
    assert {n for n, _ in published} == {"airflow-apiserver", "mlflow", "minio", "flower"}
    for name, port in published:
        host_ip = default(port).split(":")[0]
        assert host_ip == "127.0.0.1", f"{name} publishes {port} on {host_ip!r}"


def test_one_celery_configuration_across_airflow_services(services):
    keys = ("AIRFLOW__CORE__EXECUTOR", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__BROKER_URL",
            "AIRFLOW__CELERY__RESULT_BACKEND", "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "XLIR_TRAIN_QUEUE")
    af = airflow_services(services)
    assert {"airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
            "airflow-worker", "airflow-worker-train", "flower"} <= set(af)
    for key in keys:
        values = {n: s["environment"].get(key) for n, s in af.items()}
        assert len(set(values.values())) == 1 and None not in values.values(), (key, values)
    env = next(iter(af.values()))["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://") and "@redis:6379" in env["AIRFLOW__CELERY__BROKER_URL"]
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")


def queues(service: dict) -> set[str]:
    cmd = [default(c) for c in service.get("command", [])]
    if cmd[:2] != ["celery", "worker"]:
        return set()
    return set(cmd[cmd.index("--queues") + 1].split(",")) if "--queues" in cmd else {"default"}


def test_the_training_queue_and_the_default_queue_are_served(services):
    env = services["airflow-worker"]["environment"]
    served = {n: queues(s) for n, s in services.items() if queues(s)}
    assert env["XLIR_TRAIN_QUEUE"] in served["airflow-worker-train"]
    assert env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] in served["airflow-worker"]
    assert env["XLIR_TRAIN_QUEUE"] not in served["airflow-worker"]  # CPU workers never take a training task
    gpu = load("docker-compose.gpu.yaml")["services"]["airflow-worker-train"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices and "gpu" in devices[0]["capabilities"]
    assert services["flower"].get("profiles") == ["flower"]


def test_compose_runs_the_same_xlir_environment_as_the_local_stack(services, tmp_path):
    from xlir.stack.processes import LocalStack

    local = LocalStack(tmp_path).env()
    compose_env = services["airflow-worker"]["environment"]
    xlir_keys = {k for k in local if k.startswith(("XLIR_", "MLFLOW_TRACKING_")) and k not in {"XLIR_MLFLOW_UI_URL"}}
    assert {"MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"} <= xlir_keys
    assert xlir_keys - set(compose_env) == set()
    same = ("AIRFLOW__CORE__LOAD_EXAMPLES", "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION", "AIRFLOW__CORE__AUTH_MANAGER",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR",
            "MLFLOW_TRACKING_USERNAME")
    assert {k: compose_env[k] for k in same} == {k: local[k] for k in same}
    init = services["airflow-init"]
    assert init["entrypoint"] == ["xlir"] and init["command"] == ["stack", "init"]  # the local stack's init code


def test_compose_runs_the_same_celery_configuration_as_the_local_celery_stack(services, tmp_path):
    """The CeleryExecutor's variables (``xlir.stack.env.celery_env``) are in every Airflow service of
    compose with the local ``XLIR_EXECUTOR=celery`` stack's values: executor, queues, the broker's
    visibility timeout; the broker a password-protected Redis, the result backend Airflow's database;
    the training worker takes one task at a time from the training queue in both."""
    from xlir.stack.env import celery_env
    from xlir.stack.processes import TRAIN_WORKER, LocalStack

    stack = LocalStack(tmp_path, executor="celery")
    local = stack.env()
    keys = set(celery_env("redis://:pw@host:6379/0", "db+postgresql+psycopg2://a:pw@host/airflow"))
    assert keys <= set(local)
    per_deployment = {"AIRFLOW__CELERY__BROKER_URL", "AIRFLOW__CELERY__RESULT_BACKEND",
                      "AIRFLOW__CELERY__WORKER_CONCURRENCY"}  # hosts, passwords; 2 tasks per CPU worker in compose
    for name, s in airflow_services(services).items():
        env = s["environment"]
        assert keys <= set(env), (name, sorted(keys - set(env)))
        assert {k: default(env[k]) for k in keys - per_deployment} == {k: local[k] for k in keys - per_deployment}, name
        for key, scheme in (("AIRFLOW__CELERY__BROKER_URL", "redis://:"),
                            ("AIRFLOW__CELERY__RESULT_BACKEND", "db+postgresql+psycopg2://airflow:")):
            assert env[key].startswith(scheme) and local[key].startswith(scheme), (name, key)
        assert local["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + local["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    xlir_keys = {k for k in local if k.startswith("XLIR_") and k != "XLIR_MLFLOW_UI_URL"}
    assert xlir_keys <= set(services["airflow-worker"]["environment"])
    compose_train = [default(c) for c in services["airflow-worker-train"]["command"]]
    local_train = stack._commands()[TRAIN_WORKER]
    for flag in ("--queues", "--concurrency"):
        assert compose_train[compose_train.index(flag) + 1] == local_train[local_train.index(flag) + 1], flag


def test_the_image_install_step_ships_the_package_data(tmp_path):
    """The Dockerfile installs xlir non-editable: the wheel must carry the suite, gates and pinned sources."""
    import subprocess
    import sys
    import zipfile

    import shutil

    copy = tmp_path / "xlir"  # what the Dockerfile copies, built outside the checkout (no build/ left there)
    copy.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, copy / name)
    shutil.copytree(REPO_ROOT / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                        str(tmp_path), str(copy)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    names = zipfile.ZipFile(next(tmp_path.glob("xlir-*.whl"))).namelist()
    for needed in ("xlir/validation/suite.yaml", "xlir/validation/default_config.yaml", "xlir/registry/gates.yaml",
                   "xlir/data/sources.json"):
        assert needed in names, needed


def test_compose_init_command_sets_the_password_from_the_environment_and_the_pool(tmp_path):
    """What the `airflow-init` service runs (`xlir stack init`), on a throwaway SQLite Airflow."""
    import os
    import stat
    import subprocess
    import sys

    from xlir.stack.env import airflow_env

    env = {**os.environ, **airflow_env(tmp_path / "airflow"), "AIRFLOW_ADMIN_PASSWORD": "from-dot-env",
           "XLIR_LANDING_DIR": str(tmp_path / "data" / "landing")}
    r = subprocess.run([sys.executable, "-m", "xlir.cli", "stack", "init"], env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    pw = tmp_path / "airflow" / "passwords.json"
    assert json.loads(pw.read_text()) == {"admin": "from-dot-env"} and stat.S_IMODE(pw.stat().st_mode) == 0o600
    assert "from-dot-env" not in r.stdout  # a password from the environment is not echoed
    assert (tmp_path / "data" / "landing").is_dir()
    pools = subprocess.run([sys.executable, "-m", "airflow", "pools", "get", "xlir_promotion", "-o", "json"], env=env,
                           capture_output=True, text=True, timeout=300)
    assert pools.returncode == 0 and json.loads(pools.stdout)[0]["slots"] in (1, "1")


# ---------------------------------------------------------------- issue 13: settings, secrets, MLflow's auth


def dot_env_example() -> dict[str, str]:
    return dict(line.split("=", 1) for line in (REPO_ROOT / ".env.example").read_text().splitlines()
                if "=" in line and not line.startswith("#"))


def resolve(value: str, dot_env: dict[str, str]) -> str:
    """``value`` as compose interpolates it with ``dot_env`` as .env."""
    def sub(m):
        got = dot_env.get(m["name"], "")
        if m["op"] in (":?", ":-") and not got or m["op"] in ("?", "-") and m["name"] not in dot_env:
            return m["arg"] if (m["op"] or "").endswith("-") else pytest.fail(f"{m['name']}: {m['arg']}")
        return got
    return VAR.sub(sub, str(value))


def depends_on_all(services: dict, name: str) -> set[str]:
    seen, todo = set(), [name]
    while todo:
        for dep in services[todo.pop()].get("depends_on") or {}:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def test_compose_refuses_to_start_with_a_change_me_left(services, tmp_path):
    """config-check (`xlir stack check-env`) runs before any database or store, with every value
    .env.example marks CHANGE-ME; it exits non-zero while any is left, naming it but never a value."""
    import os
    import subprocess
    import sys

    check = services["config-check"]
    assert check["entrypoint"] == ["xlir"] and check["command"] == ["stack", "check-env"]
    example = dot_env_example()
    placeholders = {k for k, v in example.items() if v == "CHANGE-ME"}
    assert placeholders <= set(check["environment"]), sorted(placeholders - set(check["environment"]))
    for name in set(services) - {"config-check"}:  # nothing starts before the check passed
        assert "config-check" in depends_on_all(services, name), name
    for name in ("postgres", "redis", "minio"):
        assert services[name]["depends_on"]["config-check"]["condition"] == "service_completed_successfully"

    def run(dot_env: dict[str, str]) -> subprocess.CompletedProcess:
        env = {k: resolve(v, dot_env) for k, v in check["environment"].items()}
        return subprocess.run([sys.executable, "-m", "xlir.cli", *check["command"]], capture_output=True, text=True,
                              timeout=120, env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), **env})

    as_shipped = run(example)
    assert as_shipped.returncode != 0
    out = as_shipped.stdout + as_shipped.stderr
    assert all(k in out for k in placeholders) and "CHANGE-ME" in out
    filled = {k: (f"real-{k.lower()}-value" if v == "CHANGE-ME" else v) for k, v in example.items()}
    ok = run(filled)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert not any(v in ok.stdout + ok.stderr for k, v in filled.items() if k in placeholders)
    one_left = run({**filled, "MLFLOW_PIPELINE_PASSWORD": "CHANGE-ME"})
    assert one_left.returncode != 0 and "MLFLOW_PIPELINE_PASSWORD" in one_left.stdout + one_left.stderr
    assert "AIRFLOW_JWT_SECRET" not in one_left.stdout + one_left.stderr
    short = run({**filled, "MLFLOW_ADMIN_PASSWORD": "short"})
    assert short.returncode != 0 and "MLFLOW_ADMIN_PASSWORD" in short.stdout + short.stderr


def test_the_init_checks_and_refuses_a_change_me_too():
    from xlir.stack.init import InitError, check_settings, placeholders

    assert placeholders({"A": "x", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://airflow:CHANGE-ME@db/airflow",
                         "B": "change-me"}) == ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "B"]
    with pytest.raises(InitError, match="AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") as e:
        check_settings({"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://airflow:CHANGE-ME@db/airflow"})
    assert "postgresql://" not in str(e.value)  # names, never values
    check_settings({"AIRFLOW_ADMIN_PASSWORD": "a-real-one", "MLFLOW_TRACKING_PASSWORD": "long-enough-pw"})


SECRET = re.compile(r"PASSWORD|SECRET|FERNET|ACCESS_KEY|_AUTH$")
SHELL_VAR = re.compile(r"\$\$\{?([A-Z0-9_]+)")


def test_no_secret_is_passed_on_a_command_line(compose):
    """A process's command line is readable by every local user (/proc/PID/cmdline, `ps`): no service
    passes a secret as an argument, compose-interpolated or expanded by its shell, except to a shell
    builtin (printf, export) that starts no process; the postgres init script reads them with \\getenv."""
    for name, s in compose["services"].items():
        for key in ("command", "entrypoint"):
            value = s.get(key) or []
            parts = value if isinstance(value, list) else [value]
            for part in map(str, parts):
                assert not [m["name"] for m in VAR.finditer(part) if SECRET.search(m["name"])], (name, key, part)
                for step in re.split(r"&&|\|\||;|\|", part):
                    named = [v for v in SHELL_VAR.findall(step) if SECRET.search(v)]
                    assert not named or step.split()[0] in ("printf", "export"), (name, step)
    script = (REPO_ROOT / "mlflow" / "postgres-init.sh").read_text()
    assert "\\getenv airflow_pw AIRFLOW_DB_PASSWORD" in script and "\\getenv mlflow_pw MLFLOW_DB_PASSWORD" in script
    assert not re.search(r"-v\s+\w+=\S*PASSWORD", script)
    mlflow = compose["services"]["mlflow"]
    uri = mlflow["command"][mlflow["command"].index("--backend-store-uri") + 1]
    assert uri == "postgresql+psycopg2://mlflow@postgres:5432/mlflow"  # the password comes as PGPASSWORD
    assert mlflow["environment"]["PGPASSWORD"] == "${MLFLOW_DB_PASSWORD:?set MLFLOW_DB_PASSWORD in .env}"


def test_mlflow_runs_the_basic_auth_app_as_the_local_stack_does(services, tmp_path):
    """Same app, same settings by environment, the same config file (mlflow/basic_auth.ini, baked into the
    image) as the local stack writes; the pipeline's user by environment; airflow-init creates it."""
    from xlir.stack.mlflow_auth import PIPELINE_USER, auth_ini, server_env
    from xlir.stack.processes import LocalStack

    mlflow = services["mlflow"]
    assert mlflow["command"][:3] == ["server", "--app-name", "basic-auth"]
    local = LocalStack(tmp_path)
    local_keys = set(local.mlflow_server_env(echo=lambda *_: None)) & set(server_env("x", "y", "z"))
    assert local_keys == set(server_env("x", "y", "z")) and local_keys <= set(mlflow["environment"])
    config = mlflow["environment"]["MLFLOW_AUTH_CONFIG_PATH"]
    assert f"COPY basic_auth.ini {config}" in (REPO_ROOT / "mlflow" / "Dockerfile").read_text()
    shipped = (REPO_ROOT / "mlflow" / "basic_auth.ini").read_text()
    assert shipped == auth_ini("postgresql+psycopg2://mlflow@postgres:5432/mlflow")
    assert (local.state / "mlflow" / "auth" / "basic_auth.ini").read_text() == auth_ini(
        f"sqlite:///{local.state / 'mlflow' / 'auth' / 'basic_auth.db'}")
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read_string(shipped)
    assert "admin_password" not in cfg["mlflow"] and not re.search(r"://[^/@]*:[^/@]*@", cfg["mlflow"]["database_uri"])
    for name, s in airflow_services(services).items():
        assert s["environment"]["MLFLOW_TRACKING_USERNAME"] == PIPELINE_USER, name
    init = services["airflow-init"]
    assert init["environment"]["MLFLOW_ADMIN_PASSWORD"].startswith("${MLFLOW_ADMIN_PASSWORD:?")
    assert init["depends_on"]["mlflow"]["condition"] == "service_healthy"
    assert not any("MLFLOW_ADMIN_PASSWORD" in s.get("environment", {}) for n, s in services.items()
                   if n not in ("airflow-init", "config-check"))  # the admin's password only where it is used
    server_pins = dict(line.split("==", 1) for line in (REPO_ROOT / "mlflow" / "requirements.txt").read_text().splitlines()
                       if "==" in line and not line.startswith("#"))
    assert {"Flask-WTF", "WTForms"} <= set(server_pins)  # mlflow's `auth` extra
