"""The first steps of an Airflow installation for xlir, the same in every mode (the local stack's
``up`` and the compose ``airflow-init`` service, ``xlir stack init``): only the environment differs.

1. the admin password file of the SimpleAuthManager (mode 0600): the given password (compose:
   ``AIRFLOW_ADMIN_PASSWORD`` from ``.env``), else one generated and printed once;
2. ``airflow db migrate`` (idempotent: upgrades an existing metadata DB);
3. the one-slot pool that keeps promotions from overlapping;
4. the xlir data folders named by ``XLIR_*_DIR``.

Compose's init services also refuse settings still at their ``.env.example`` placeholder
(``check_settings``: ``CHANGE-ME`` anywhere in a value, an MLflow password shorter than MLflow's
minimum), and ``airflow-init`` creates MLflow's pipeline user (``xlir.stack.mlflow_auth``).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

from xlir.errors import XlirError
from xlir.pipeline.params import PROMOTION_POOL
from xlir.stack.mlflow_auth import write_private

ADMIN = "admin"
PLACEHOLDER = "CHANGE-ME"
MLFLOW_PASSWORDS = ("MLFLOW_ADMIN_PASSWORD", "MLFLOW_PIPELINE_PASSWORD", "MLFLOW_TRACKING_PASSWORD")
DATA_DIRS = ("XLIR_LANDING_DIR", "XLIR_STORE_DIR", "XLIR_QUARANTINE_DIR", "XLIR_PIPELINE_DIR")


class InitError(XlirError):
    """An Airflow command of the initialisation failed."""


def placeholders(env: dict) -> list[str]:
    """Names of the variables whose value still holds ``.env.example``'s ``CHANGE-ME``."""
    return sorted(k for k, v in env.items() if PLACEHOLDER.lower() in str(v).lower())


def check_settings(env: dict | None = None) -> None:
    """Refuse to go on with a ``CHANGE-ME`` left, or an MLflow password MLflow would refuse (names only,
    never values)."""
    from xlir.stack.mlflow_auth import MIN_PASSWORD

    env = dict(os.environ if env is None else env)
    left = placeholders(env)
    if left:
        raise InitError(f"refusing to start: {', '.join(left)} still set to {PLACEHOLDER} (from .env.example); "
                        "put a real value in .env (python -c \"import secrets; print(secrets.token_urlsafe(32))\")")
    short = [k for k in MLFLOW_PASSWORDS if k in env and len(env[k]) < MIN_PASSWORD]
    if short:
        raise InitError(f"refusing to start: {', '.join(short)} shorter than {MIN_PASSWORD} characters "
                        "(MLflow refuses such passwords)")


def run_airflow(args: list[str], env: dict, cwd: str | Path | None = None, timeout: float = 600) -> str:
    r = subprocess.run([sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True,
                       cwd=cwd, timeout=timeout)
    if r.returncode != 0:
        raise InitError(f"`airflow {' '.join(args)}` failed ({r.returncode}): {r.stderr[-2000:]}")
    return r.stdout


def write_password(passwords_file: Path, password: str | None, echo=print) -> None:
    """Keep the admin password in a 0600 file: ``password`` when given (rewritten if it changed),
    else the existing file, else a generated one, printed once."""
    passwords_file.parent.mkdir(parents=True, exist_ok=True)
    current = None
    if passwords_file.is_file():
        try:
            current = json.loads(passwords_file.read_text()).get(ADMIN)
        except ValueError:
            current = None
    if current is not None and (password is None or password == current):
        os.chmod(passwords_file, 0o600)
        return
    generated = password is None
    password = password or secrets.token_urlsafe(18)
    write_private(passwords_file, json.dumps({ADMIN: password}))
    if generated:
        echo(f"Airflow admin password (shown once, kept in {passwords_file}, mode 0600): {password}")
    else:
        echo(f"Airflow admin password set from the environment (kept in {passwords_file}, mode 0600)")


def init_airflow(env: dict | None = None, *, password: str | None = None, migrate: bool = True, echo=print,
                 cwd: str | Path | None = None) -> None:
    """Steps 1-4 for the Airflow that ``env`` describes (default: this process's environment)."""
    env = dict(os.environ if env is None else env)
    passwords_file = env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
    if not passwords_file:
        raise InitError("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE is not set: where should the admin password go?")
    write_password(Path(passwords_file), password, echo)
    if migrate:
        echo("initialising the Airflow metadata DB (airflow db migrate)")
        run_airflow(["db", "migrate"], env, cwd)
    run_airflow(["pools", "set", PROMOTION_POOL, "1", "xlir: one promotion at a time"], env, cwd)
    for var in DATA_DIRS:
        if env.get(var):
            Path(env[var]).mkdir(parents=True, exist_ok=True)
