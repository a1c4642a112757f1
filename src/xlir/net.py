"""Loopback helpers shared by the local services (MLflow server, Airflow stack) and their tests."""

from __future__ import annotations

import socket
import urllib.request

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


__all__ = ["free_port", "http_ok"]
