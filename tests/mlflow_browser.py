"""Headless Chromium (the Debian package ``chromium``) on the MLflow UI: the page's DOM once the JS
app has rendered it, and screenshots. The browser may reach 127.0.0.1 only; every other host name
resolves to nothing, so a page can never fetch from the network."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

NAMES = ("chromium", "chromium-browser")
OUTPUT = Path(__file__).resolve().parents[1] / "test-output"
"""Screenshots and page dumps of the browser tests (git-ignored)."""


def chromium() -> str | None:
    return next((p for p in map(shutil.which, NAMES) if p), None)


def _run(args: list[str], budget_ms: int, timeout: float) -> str:
    exe = chromium()
    if exe is None:
        raise RuntimeError("chromium is not installed")
    with tempfile.TemporaryDirectory(prefix="xlir-chromium-") as profile:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
               "--disable-extensions", "--disable-background-networking", "--disable-sync", "--mute-audio",
               f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
               f"--virtual-time-budget={budget_ms}", *args]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"chromium exited {r.returncode}: {r.stderr[-2000:]}")
    return r.stdout


def dump_dom(url: str, size: str = "2400,1400", budget_ms: int = 20000, timeout: float = 120) -> str:
    """The page's DOM as HTML after ``budget_ms`` of virtual time (network waits do not use it up), in a
    wide window: MLflow's tables render only the columns that fit."""
    return _run([f"--window-size={size}", "--dump-dom", url], budget_ms, timeout)


def screenshot(url: str, path: Path, size: str = "1600,1400", budget_ms: int = 20000, timeout: float = 120) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    _run([f"--screenshot={path}", f"--window-size={size}", "--hide-scrollbars", url], budget_ms, timeout)
    return path
