"""A Redis server for the local stack's Celery mode (``XLIR_EXECUTOR=celery``): Celery's broker.

The Debian package's ``redis-server``, bound to 127.0.0.1 only (no Unix socket), a password
required (``requirepass``), run as its own user (``redis`` when started by root, else the caller).
Its settings are a config file under the stack folder (``STATE/redis/redis.conf``, mode 0600,
readable by the server's user only): the password is in it, never on a command line. The password
itself is kept in ``STATE/redis/password`` (0600) and reaches Airflow's processes by environment
(``AIRFLOW__CELERY__BROKER_URL``).

Persistence: the append-only file (``appendonly yes``, fsync every second, as compose's Redis),
in ``STATE/redis/data`` and nowhere else; no RDB snapshots. A message Celery has queued survives a
restart of the server (stopped with SIGTERM, Redis writes what it holds first), so a task queued
while the broker went down and came back is still delivered.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from xlir.errors import XlirError
from xlir.stack.mlflow_auth import secret_file, write_private
from xlir.stack.servers import check_reachable, hand_to, popen_as, server_user, wait_ready

RUN_AS = "redis"


class RedisError(XlirError):
    """The local Redis server could not be set up or reached."""


def server_binary() -> Path:
    """``$XLIR_REDIS_SERVER``, else ``redis-server`` on PATH (the Debian package: /usr/bin)."""
    found = os.environ.get("XLIR_REDIS_SERVER") or shutil.which("redis-server") or shutil.which(
        "redis-server", path="/usr/bin:/usr/sbin:/usr/local/bin")
    if not found or not Path(found).is_file():
        raise RedisError("redis-server not found: install the Debian package `redis-server` (`make redis-server` "
                         "does, as root) or set XLIR_REDIS_SERVER to its path")
    return Path(found)


def config(port: int, password: str, data: Path) -> str:
    """``redis.conf``: loopback only, a password, state in ``data`` only (append-only file, no snapshots)."""
    quoted = password.replace("\\", "\\\\").replace('"', '\\"')
    return ("# the local stack's Redis (src/xlir/stack/redis.py): Celery's broker; mode 0600, it holds the password\n"
            "bind 127.0.0.1\n"
            "protected-mode yes\n"
            f"port {port}\n"
            "unixsocket \"\"\n"
            f'requirepass "{quoted}"\n'
            f"dir {data}\n"
            "appendonly yes\n"
            "appendfsync everysec\n"
            'save ""\n'
            "daemonize no\n"
            'logfile ""\n'
            "databases 2\n")


class LocalRedis:
    def __init__(self, root: Path, port: int):
        self.root, self.port = Path(root), port
        self.data = self.root / "data"
        self.config_file = self.root / "redis.conf"

    def password(self) -> str:
        return secret_file(self.root / "password", 24)[0]

    def url(self, db: int = 0) -> str:
        """Celery's broker URL (with the password: it goes by environment only)."""
        return f"redis://:{self.password()}@127.0.0.1:{self.port}/{db}"

    def run_as(self):
        """The server's own user: ``redis`` for root, else the caller."""
        return server_user(RUN_AS, RedisError)

    def prepare(self) -> None:
        """The data folder and the config file, both owned by the server's user."""
        user = self.run_as()
        self.password()  # made first: its folder is created 0700
        os.chmod(self.root, 0o711)  # the server's user may pass through, not list (the password file is the caller's)
        self.data.mkdir(parents=True, exist_ok=True)
        check_reachable(self.data, user, "Redis", RedisError)
        hand_to(self.data, user, 0o700)
        write_private(self.config_file, config(self.port, self.password(), self.data))
        hand_to(self.config_file, user, 0o600)

    def command(self) -> list[str]:
        return [str(server_binary()), str(self.config_file)]

    def popen_kwargs(self) -> dict:
        return popen_as(RUN_AS, RedisError)

    def client(self, **kw):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password(), **kw)

    def wait_ready(self, alive, timeout: float = 60.0) -> None:
        """Until ``PING`` answers with the password (``alive()`` False: the server exited, stop waiting)."""
        import redis

        wait_ready(lambda: self.client(socket_timeout=3).ping(), (redis.RedisError,), alive, timeout,
                   f"Redis on 127.0.0.1:{self.port}", RedisError, poll=0.3)
