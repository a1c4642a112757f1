"""MLflow's basic-auth app for the local stack and compose: who may write to the registry.

``mlflow server --app-name basic-auth`` refuses every request without valid credentials (only
``/health`` and the static files stay open), so no anonymous local user or container can move
``champion``, delete the registry lock or overwrite the artifacts workers load. Two users:

* ``admin`` (an MLflow admin): created by the server on its first start from
  ``MLFLOW_AUTH_ADMIN_PASSWORD`` (the local stack generates it, compose takes
  ``MLFLOW_ADMIN_PASSWORD`` from ``.env``); for people, and for creating the pipeline user;
* ``xlir``, the pipeline's own user (not an admin): MANAGE on every experiment and registered
  model (runs, artifacts, versions, aliases, the lock model), nothing on users or permissions.
  Pipeline processes get it by environment (``MLFLOW_TRACKING_USERNAME`` /
  ``MLFLOW_TRACKING_PASSWORD``, read by MLflow's client), never on a command line.

Everyone else who logs in gets ``default_permission`` (READ). The server's own settings go by
environment and one config file without secrets (``auth_ini``): ``MLFLOW_AUTH_CONFIG_PATH``,
``MLFLOW_AUTH_ADMIN_PASSWORD``, ``MLFLOW_FLASK_SERVER_SECRET_KEY`` (CSRF of the sign-up page;
the same in every worker). The auth tables live in MLflow's own database (PostgreSQL; their
alembic table is ``alembic_version_auth``) or, with SQLite, in a file of their own.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from xlir.errors import XlirError

ADMIN = "admin"
PIPELINE_USER = "xlir"
DEFAULT_PERMISSION = "READ"
# What the pipeline does: create and reopen runs in any experiment, log and read artifacts, create
# registered models and versions, move and delete aliases, create and delete the lock model.
PIPELINE_GRANTS = (("experiment", "*", "MANAGE"), ("registered_model", "*", "MANAGE"))
MIN_PASSWORD = 12  # MLflow's own minimum


class MlflowAuthError(XlirError):
    """MLflow's users could not be set up (server unreachable, admin login refused)."""


def auth_ini(database_uri: str, *, default_permission: str = DEFAULT_PERMISSION, admin: str = ADMIN) -> str:
    """The basic-auth config file: no password in it (the admin's comes by environment, a
    PostgreSQL password by ``PGPASSWORD``)."""
    return ("# MLflow's basic-auth app (mlflow server --app-name basic-auth): src/xlir/stack/mlflow_auth.py\n"
            "# No secret here: the admin password comes from MLFLOW_AUTH_ADMIN_PASSWORD on the first start,\n"
            "# a PostgreSQL password from PGPASSWORD.\n"
            "[mlflow]\n"
            f"default_permission = {default_permission}\n"
            f"database_uri = {database_uri}\n"
            f"admin_username = {admin}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            "grant_default_workspace_access = false\n"
            "# a login checked once a minute per worker, not on every request (a PBKDF2 hash each time:\n"
            "# a registration's hundreds of requests took 4x longer); a changed or deleted user takes\n"
            "# effect at once on the worker that changed it, within 60 s on the others\n"
            "auth_cache_ttl_seconds = 60\n")


def server_env(config_path: str | Path, admin_password: str, secret_key: str) -> dict[str, str]:
    """The variables ``mlflow server --app-name basic-auth`` reads (compose's mlflow service has the same)."""
    return {"MLFLOW_AUTH_CONFIG_PATH": str(config_path), "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secret_key}


def secret_file(path: Path, nbytes: int = 18) -> tuple[str, bool]:
    """The secret kept in ``path`` (mode 0600, its folder 0700 when made here), generated the first
    time; (value, generated now)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        value = ""
    if value:
        os.chmod(path, 0o600)
        return value, False
    value = secrets.token_urlsafe(nbytes)
    write_private(path, value + "\n")
    return value, True


def write_private(path: Path, text: str) -> None:
    """``text`` into ``path`` with mode 0600 (replaced atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def request(uri: str, method: str, path: str, body: dict | None = None, *, auth: tuple[str, str] | None = None,
            query: dict | None = None, timeout: float = 30.0) -> tuple[int, dict | str]:
    """One REST call (stdlib only): (HTTP status, JSON body or text). ``auth`` None: anonymous."""
    url = uri.rstrip("/") + path + ("?" + urllib.parse.urlencode(query) if query else "")
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if auth is not None:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except OSError as e:
        raise MlflowAuthError(f"{method} {url}: {e}") from None
    text = raw.decode(errors="replace")
    try:
        return status, json.loads(text) if text else {}
    except ValueError:
        return status, text


def ensure_pipeline_user(uri: str, admin_password: str, password: str, *, user: str = PIPELINE_USER,
                         admin: str = ADMIN, grants=PIPELINE_GRANTS, timeout: float = 60.0) -> bool:
    """Create ``user`` with ``password`` (or reset its password when it changed) and give it
    ``grants``, as the admin; idempotent. True when the user was created now."""
    admin_auth = (admin, admin_password)
    deadline = time.monotonic() + timeout
    while True:  # the auth app may still be starting after /health answers
        status, body = request(uri, "GET", "/api/2.0/mlflow/users/get", auth=admin_auth, query={"username": user})
        if status not in (502, 503) or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    if status == 401:
        raise MlflowAuthError(f"MLflow at {uri} refused the admin login of {admin!r}: the admin password was set "
                              "when the server first started (MLFLOW_AUTH_ADMIN_PASSWORD); a later change must go "
                              "through MLflow's update-password API")
    created = False
    if status == 404 or (status != 200 and "RESOURCE_DOES_NOT_EXIST" in str(body)):
        status, body = request(uri, "POST", "/api/2.0/mlflow/users/create", {"username": user, "password": password},
                               auth=admin_auth)
        if status != 200:
            raise MlflowAuthError(f"creating MLflow user {user!r}: HTTP {status}: {str(body)[:500]}")
        created = True
    elif status != 200:
        raise MlflowAuthError(f"reading MLflow user {user!r}: HTTP {status}: {str(body)[:500]}")
    elif request(uri, "GET", "/api/2.0/mlflow/users/current", auth=(user, password))[0] == 401:
        status, body = request(uri, "PATCH", "/api/2.0/mlflow/users/update-password",
                               {"username": user, "password": password}, auth=admin_auth)
        if status != 200:
            raise MlflowAuthError(f"setting the password of MLflow user {user!r}: HTTP {status}: {str(body)[:500]}")
    for resource_type, resource_id, permission in grants:
        status, body = request(uri, "POST", "/api/3.0/mlflow/users/permissions/grant",
                               {"username": user, "resource_type": resource_type, "resource_id": resource_id,
                                "permission": permission}, auth=admin_auth)
        if status != 200 and "RESOURCE_ALREADY_EXISTS" not in str(body):
            raise MlflowAuthError(f"granting {permission} on {resource_type} {resource_id!r} to {user!r}: "
                                  f"HTTP {status}: {str(body)[:500]}")
    return created


def check_auth_app() -> None:
    """MLflow's basic-auth app needs Flask-WTF (the ``mlflow[auth]`` extra): one clear error, not a crash."""
    try:
        import flask_wtf  # noqa: F401
    except ImportError:
        raise MlflowAuthError("MLflow's basic-auth app needs Flask-WTF (mlflow's `auth` extra): "
                              "pip install 'Flask-WTF==1.3.0' 'WTForms==3.2.2'") from None
