"""A local MLflow tracking server: SQLite backend, local artifact store, stopped by its pid.

For tests, smoke runs and a laptop; production points ``MLFLOW_TRACKING_URI`` at a shared server.
The server runs in its own process group (``mlflow server`` starts a worker under it), so
``stop`` ends exactly the processes it started and nothing else. ``auth=True`` runs MLflow's
basic-auth app as the local stack does (``xlir.stack.mlflow_auth``): anonymous requests refused,
an ``admin`` whose generated password is ``admin_password`` (also in ``ROOT/auth/admin.password``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from xlir.errors import XlirError
from xlir.net import free_port, http_ok, stop_process_group, wait_http_ok


def healthy(uri: str, timeout: float = 2.0) -> bool:
    """True when the MLflow server at ``uri`` answers its health endpoint."""
    return http_ok(uri.rstrip("/") + "/health", timeout=timeout)


@dataclass
class LocalServer:
    """``mlflow server --workers 1`` on 127.0.0.1 with its state under ``root``."""

    root: Path
    host: str = "127.0.0.1"
    port: int = 0
    auth: bool = False
    process: subprocess.Popen | None = field(default=None, repr=False)
    admin_password: str | None = field(default=None, repr=False)

    @property
    def uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 90.0) -> LocalServer:
        self.root = Path(self.root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port(host=self.host)
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        app = []
        if self.auth:
            from xlir.stack.mlflow_auth import auth_ini, check_auth_app, secret_file, server_env, write_private

            check_auth_app()
            folder = self.root / "auth"
            self.admin_password, _ = secret_file(folder / "admin.password")
            key, _ = secret_file(folder / "flask-secret-key", 32)
            write_private(folder / "basic_auth.ini", auth_ini(f"sqlite:///{folder / 'basic_auth.db'}"))
            env.update(server_env(folder / "basic_auth.ini", self.admin_password, key))
            app = ["--app-name", "basic-auth"]
        cmd = [
            sys.executable, "-m", "mlflow", "server", *app,
            "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
            "--artifacts-destination", str(self.root / "artifacts"),
            "--host", self.host, "--port", str(self.port), "--workers", "1",
        ]
        log = open(self.root / "server.log", "ab")
        self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        try:
            wait_http_ok(self.uri + "/health", self.process, timeout, "mlflow server", f"; see {self.root / 'server.log'}")
        except XlirError:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the server's own process group (its pid), then SIGKILL if it lingers."""
        p, self.process = self.process, None
        stop_process_group(p, timeout)

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """``python -m xlir.registry.server --root .xlir/mlflow [--port 5000]``: serve until Ctrl-C."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--root", default=".xlir/mlflow", help="folder for mlflow.db, artifacts and server.log")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5000)
    args = ap.parse_args(argv)
    server = LocalServer(Path(args.root), host=args.host, port=args.port).start()
    print(f"MLflow tracking server on {server.uri} (state in {server.root}); export MLFLOW_TRACKING_URI={server.uri}",
          flush=True)
    try:
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
