"""A mutex for registry writes, held in the tracking server itself.

MLflow has no compare-and-set on aliases, but creating a registered model is atomic: the
server's database refuses a second model of the same name (``RESOURCE_ALREADY_EXISTS``). So the
lock is a registered model named ``<model>.lock``: creating it acquires, deleting it releases.
Its tags say who holds it and until when (``expires_at``, the holder's clock).

Guarantee (SQL-backed server, any number of hosts): at most one holder at a time, as long as
no holder keeps it past its lease (``ttl``, default ``lock_lease()``: ``$XLIR_REGISTRY_LOCK_LEASE``
seconds, 600 unless set; the lock is held only while versions are created and aliases move, well
under a second when the server is healthy). The pipeline's promotion task is bounded by an
``execution_timeout`` strictly below the lease (``xlir.pipeline.dag_support.task_timeouts``, checked
when the DAG is parsed), so a slow server fails the task before its lock could outlive the lease.
A holder that crashed leaves the lock until its lease ends; a waiting
client then breaks it under a second atomic lock (``<model>.lock.break``), re-reading that the
stale owner still holds it before deleting, so two waiters never both break and take it.
What is not covered: a holder outside the pipeline that outlives its lease (a process paused for
ten minutes) and hosts whose clocks disagree by more than the lease.

An HTTP retry of the creating request after a lost reply collides with the lock its first
attempt created: the holder read back is this lock's own owner, so the lock is held (not waited
for until the timeout). The same goes for the breaker lock.

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
from xlir.registry.mlflow_errors import EXISTS, MISSING, is_error

log = logging.getLogger(__name__)

LEASE_ENV = "XLIR_REGISTRY_LOCK_LEASE"
DEFAULT_LEASE = 600.0


def lock_lease() -> float:
    """The registry lock's lease in seconds: ``$XLIR_REGISTRY_LOCK_LEASE``, else 600."""
    raw = os.environ.get(LEASE_ENV, "").strip()
    if not raw:
        return DEFAULT_LEASE
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise XlirError(f"{LEASE_ENV}={raw!r}: expected a positive number of seconds")
    return value


class RegistryLockTimeout(XlirError):
    """Another process held the registry lock for longer than we were willing to wait."""


class RegistryLock:
    """``with RegistryLock(client, "xlir-encoder", purpose="promote v3"):`` ... registry writes ..."""

    def __init__(self, client, model_name: str, *, purpose: str = "", ttl: float | None = None, timeout: float = 300.0,
                 poll: float = 0.2):
        self.client = client
        self.name = f"{model_name}.lock"
        self.purpose = purpose
        self.ttl, self.timeout, self.poll = lock_lease() if ttl is None else ttl, timeout, poll
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}:{uuid.uuid4().hex[:8]}"
        self.held = False

    def acquire(self) -> RegistryLock:
        deadline = time.monotonic() + self.timeout
        while True:
            now = time.time()
            created = self._create(
                self.name,
                tags={"owner": self.owner, "purpose": self.purpose[:200], "acquired_at": f"{now:.3f}",
                      "expires_at": f"{now + self.ttl:.3f}"},
                description="xlir registry lock: held while aliases move; deleted on release",
            )
            if created is None:  # the server saw the lock, then its holder released it: try again
                continue
            holder = created
            if holder.get("owner") == self.owner:
                self.held = True
                return self
            if self._expired(holder):
                self._break(holder)
                continue
            if time.monotonic() > deadline:
                who = f"{holder.get('owner')} ({holder.get('purpose')})" if holder else "another client"
                raise RegistryLockTimeout(
                    f"registry lock {self.name!r} is held by {who}; waited {self.timeout:.0f} s. If that process "
                    f"is gone, the lock frees itself at its expiry; or delete the registered model {self.name!r}"
                )
            time.sleep(self.poll * (0.5 + random.random()))

    def _create(self, name: str, tags: dict, description: str | None = None) -> dict | None:
        """Create the lock model ``name``; the tags of whoever holds it now (``tags`` when we created it),
        or None when it vanished while the server reported the collision (free now: try again).

        "Already exists" is read back, never taken to mean "someone else": when a reply is lost and the
        HTTP client retries the creating request, the retry collides with the lock its first attempt
        created, and the holder it finds is this lock's own owner (held, not waited for)."""
        try:
            self.client.create_registered_model(name, tags=tags, description=description)
            return dict(tags)
        except Exception as e:  # noqa: BLE001 - only 'already exists' means 'held'
            if is_error(e, MISSING):
                return None
            if not is_error(e, EXISTS):
                raise
        holder = self._holder(name)
        if holder is None:  # released between the collision and the read: free now
            return None
        if holder.get("owner") == self.owner:
            log.info("registry lock %s: a retried creation found this lock's own first attempt; held", name)
        return holder

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
        other = self._create(breaker, tags={"owner": self.owner, "expires_at": f"{now + 30:.3f}"})
        if other is None:  # another breaker just finished
            return
        if other.get("owner") != self.owner:
            if self._expired(other):  # a breaker that crashed mid-break
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
            if is_error(e, MISSING):
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
            if not is_error(e, MISSING):
                raise

    def __enter__(self) -> RegistryLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
