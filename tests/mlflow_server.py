"""One real ``mlflow server`` for the tracking and registry tests (imported by those modules).

SQLite backend and artifact store in a temp folder, 127.0.0.1 on a free port, job execution off,
one worker. Started on first use, shared by every module of the test process, stopped by its
pid (process group) when the process exits. Each test uses its own registered-model name.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from xlir.registry.server import LocalServer

_server: LocalServer | None = None


def _stop() -> None:
    global _server
    if _server is not None:
        root = _server.root
        _server.stop()
        _server = None
        shutil.rmtree(root, ignore_errors=True)


def shared_server() -> LocalServer:
    """The running test server (started on the first call)."""
    global _server
    if _server is None:
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        _server = LocalServer(Path(tempfile.mkdtemp(prefix="xlir-mlflow-test-"))).start()
        atexit.register(_stop)
    return _server


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def server_pids() -> list[int]:
    """Pids of the test server's process group (empty once stopped)."""
    if _server is None or _server.process is None:
        return []
    import subprocess

    out = subprocess.run(["pgrep", "-g", str(_server.process.pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


@pytest.fixture(scope="module")
def tracking_uri():
    """The shared server's URI, exported as MLFLOW_TRACKING_URI for the module's tests."""
    server = shared_server()
    before = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = server.uri
    yield server.uri
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before
