"""What the local stack's PostgreSQL and Redis servers share: the system user each runs as (its own,
``postgres`` or ``redis``, made by their Debian packages, when the stack is started by root, else the
caller), a folder that user must reach, and the wait until a server answers."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from xlir.errors import XlirError
from xlir.net import wait_until


def server_user(name: str, error: type[XlirError] = XlirError) -> pwd.struct_passwd:
    """``name`` for root (a server should not run as root; PostgreSQL refuses to), else the caller."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise error(f"running as root needs a `{name}` system user (its Debian package creates it)") from None


def popen_as(name: str, error: type[XlirError] = XlirError) -> dict:
    """``subprocess.Popen`` keywords that start a process as ``server_user(name)`` (none when not root)."""
    if os.geteuid() != 0:
        return {}
    user = server_user(name, error)
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def check_reachable(folder: Path, user: pwd.struct_passwd, what: str, error: type[XlirError] = XlirError) -> None:
    """``user`` must be able to walk down to ``folder`` (each parent searchable by it)."""
    for parent in reversed(Path(folder).parents):
        st = parent.stat()
        if st.st_uid == user.pw_uid or st.st_mode & 0o001 or (st.st_gid == user.pw_gid and st.st_mode & 0o010):
            continue
        raise error(
            f"the {what} server runs as {user.pw_name!r}, which cannot enter {parent} (mode "
            f"{oct(st.st_mode & 0o777)}): put the stack state somewhere it can reach (XLIR_STACK_DIR), "
            "or start the stack as a non-root user")


def hand_to(path: Path, user: pwd.struct_passwd, mode: int) -> None:
    """``path`` owned by ``user`` with ``mode`` (chown only where we may)."""
    if os.geteuid() == 0:
        os.chown(path, user.pw_uid, user.pw_gid)
    os.chmod(path, mode)


def wait_ready(probe, errors: tuple[type[BaseException], ...], alive, timeout: float, what: str,
               error: type[XlirError] = XlirError, poll: float = 0.5) -> None:
    """Until ``probe()`` returns without one of ``errors`` (``alive()`` False: the server exited, stop
    waiting); ``error`` names ``what`` with the last failure otherwise."""
    failures: list[BaseException] = []

    def ready() -> bool:
        try:
            probe()
        except errors as e:
            failures.append(e)
            return False
        return True

    if wait_until(ready, alive, timeout, poll) != "ready":
        raise error(f"{what} not ready: {str(failures[-1] if failures else 'no answer').strip()}")
