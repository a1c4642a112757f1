"""Loopback helpers shared by the local services (MLflow server, Airflow stack) and their tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable

from xlir.errors import XlirError


def free_port(preferred: int = 0, host: str = "127.0.0.1") -> int:
    """``preferred`` when it is free on ``host``, else a port the OS hands out."""
    for port in dict.fromkeys((preferred, 0)):
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise XlirError(f"no free port on {host}")


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """True when ``url`` answers with a 2xx status within ``timeout`` seconds."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return 200 <= r.status < 300
    except OSError:
        return False


def wait_until(ready: Callable[[], bool], alive: Callable[[], bool], timeout: float, poll: float = 0.5) -> str:
    """Poll a starting server: ``"ready"`` once ``ready()`` is true, ``"exited"`` when ``alive()`` turns
    false first, ``"timeout"`` after ``timeout`` seconds. The one wait loop of every local server
    (MLflow, the Airflow services, PostgreSQL, Redis); each caller words its own error."""
    deadline = time.monotonic() + timeout
    while True:
        if ready():
            return "ready"
        if not alive():
            return "exited"
        if time.monotonic() >= deadline:
            return "timeout"
        time.sleep(poll)


def wait_http_ok(url: str, process: subprocess.Popen, timeout: float, what: str, log_hint: str = "") -> None:
    """Wait until ``url`` answers 2xx; ``XlirError`` when ``process`` exits first or ``timeout`` passes."""
    outcome = wait_until(lambda: http_ok(url, timeout=1.0), lambda: process.poll() is None, timeout, poll=0.25)
    if outcome == "exited":
        raise XlirError(f"{what} exited with {process.returncode}{log_hint}")
    if outcome == "timeout":
        raise XlirError(f"{what} did not answer {url} within {timeout:.0f} s{log_hint}")


def stop_process_group(process: subprocess.Popen | None, timeout: float = 15.0) -> None:
    """SIGTERM to the process group led by ``process`` (started with ``start_new_session=True``), SIGKILL
    if it lingers, then SIGKILL to any of its children that outlived it. Nothing else is signalled."""
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)
    try:  # workers that outlived the parent
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


__all__ = ["free_port", "http_ok", "stop_process_group", "wait_http_ok"]
