"""Where xlir keeps its state: one place, overridable by environment variables."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

REPO_ROOT = Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    """Root of everything xlir builds or downloads (encoders, datasets, embeddings)."""
    env = os.environ.get("XLIR_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "xlir"


def shared_data_dirs() -> list[Path]:
    """Folders that may hold the project's read-only shared data, most specific first."""
    dirs = []
    env = os.environ.get("XLIR_DATA_DIR")
    if env:
        return [Path(env).expanduser()]
    for base in (REPO_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"):
        if base.is_dir() and base not in dirs:
            dirs.append(base)
    return dirs


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """``write(binary file)`` into a temporary file beside ``path``, then rename it over ``path``: a kill
    mid-write leaves the old file or none, never a torn one (caches read by several processes)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=path.suffix + ".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
