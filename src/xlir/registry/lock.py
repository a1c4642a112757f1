"""A mutex for registry writes, held in the tracking server itself.

MLflow has no compare-and-set on aliases, but creating a registered model is atomic: the
server's database refuses a second model of the same name (``RESOURCE_ALREADY_EXISTS``). So the
lock is a registered model named ``<model>.lock``: creating it acquires, deleting it releases.
Its tags say who holds it and until when (``expires_at``, the holder's clock).

Guarantee (SQL-backed server, any number of hosts): at most one holder at a time, as long as
no holder keeps it past its lease (``ttl``, default 10 minutes; the lock is held only while
versions are created and aliases move, well under a second, or while a gate re-check
re-evaluates a champion). A holder that crashed leaves the lock until its lease ends; a waiting
client then breaks it under a second atomic lock (``<model>.lock.break``), re-reading that the
stale owner still holds it before deleting, so two waiters never both break and take it.
What is not covered: a holder that outlives its lease (a process paused for ten minutes) and
hosts whose clocks disagree by more than the lease.

A creation that collides with a lock released in the same instant fails with "does not exist"
instead of "already exists" (the server looks the existing model up after the unique-key
violation, and it is gone): that means "free now", and the creation is tried again.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid

from xlir.errors import XlirError

log = logging.getLogger(__name__)

_EXISTS = {"RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"}
_MISSING = {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"}


class RegistryLockTimeout(XlirError):
    """Another process held the registry lock for longer than we were willing to wait."""


def _code(e: Exception) -> str:
    return str(getattr(e, "error_code", ""))


class RegistryLock:
    """``with RegistryLock(client, "xlir-encoder", purpose="promote v3"):`` ... registry writes ..."""

    def __init__(self, client, model_name: str, *, purpose: str = "", ttl: float = 600.0, timeout: float = 300.0,
                 poll: float = 0.2):
        self.client = client
        self.name = f"{model_name}.lock"
        self.purpose = purpose
        self.ttl, self.timeout, self.poll = ttl, timeout, poll
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}:{uuid.uuid4().hex[:8]}"
        self.held = False

    def acquire(self) -> RegistryLock:
        deadline = time.monotonic() + self.timeout
        while True:
            now = time.time()
            try:
                self.client.create_registered_model(
                    self.name,
                    tags={"owner": self.owner, "purpose": self.purpose[:200], "acquired_at": f"{now:.3f}",
                          "expires_at": f"{now + self.ttl:.3f}"},
                    description="xlir registry lock: held while aliases move; deleted on release",
                )
                self.held = True
                return self
            except Exception as e:  # noqa: BLE001 - only 'already exists' means 'held'
                if _code(e) in _MISSING:  # the server saw the lock, then its holder released it: try again
                    continue
                if _code(e) not in _EXISTS:
                    raise
            holder = self._holder()
            if holder is not None and self._expired(holder):
                self._break(holder)
                continue
            if time.monotonic() > deadline:
                who = f"{holder.get('owner')} ({holder.get('purpose')})" if holder else "another client"
                raise RegistryLockTimeout(
                    f"registry lock {self.name!r} is held by {who}; waited {self.timeout:.0f} s. If that process "
                    f"is gone, the lock frees itself at its expiry; or delete the registered model {self.name!r}"
                )
            time.sleep(self.poll * (0.5 + random.random()))

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        holder = self._holder()
        if holder is None:
            log.warning("registry lock %s vanished before release (broken as stale?)", self.name)
            return
        if holder.get("owner") != self.owner:
            log.warning("registry lock %s is now held by %s, not by us; leaving it", self.name, holder.get("owner"))
            return
        self._delete()

    def _break(self, stale: dict) -> None:
        """Delete the lock ``stale`` describes, if it still does, under a short-lived breaker lock."""
        breaker = f"{self.name}.break"
        now = time.time()
        try:
            self.client.create_registered_model(breaker, tags={"owner": self.owner, "expires_at": f"{now + 30:.3f}"})
        except Exception as e:  # noqa: BLE001
            if _code(e) in _MISSING:  # another breaker just finished
                return
            if _code(e) not in _EXISTS:
                raise
            other = self._holder(breaker)
            if other is not None and self._expired(other):  # a breaker that crashed mid-break
                self._delete(breaker)
            time.sleep(self.poll * (0.5 + random.random()))
            return
        try:
            holder = self._holder()
            if holder is not None and holder.get("owner") == stale.get("owner") and self._expired(holder):
                log.warning("breaking stale registry lock %s held by %s (%s) since %s", self.name,
                            holder.get("owner"), holder.get("purpose"), holder.get("acquired_at"))
                self._delete()
        finally:
            self._delete(breaker)

    def _holder(self, name: str | None = None) -> dict | None:
        try:
            return dict(self.client.get_registered_model(name or self.name).tags or {})
        except Exception as e:  # noqa: BLE001
            if _code(e) in _MISSING:
                return None
            raise

    def _expired(self, tags: dict) -> bool:
        try:
            return float(tags["expires_at"]) < time.time()
        except (KeyError, ValueError):
            return False  # tags not written yet: a creation in flight

    def _delete(self, name: str | None = None) -> None:
        try:
            self.client.delete_registered_model(name or self.name)
        except Exception as e:  # noqa: BLE001
            if _code(e) not in _MISSING:
                raise

    def __enter__(self) -> RegistryLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
