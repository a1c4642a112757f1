"""Named datasets: where their files come from and how they are found.

A name resolves, file by file, from ``XLIR_DATA_DIR`` when set, else the project's
``../shared/data`` when present, else a download from the public origin at a pinned commit
into the cache. Every file is checked against the sha256 pinned in ``sources.json``, wherever
it was found.
"""

from __future__ import annotations

import difflib
import json
import os
import tempfile
import urllib.error
import urllib.request
from functools import lru_cache
from pathlib import Path

from xlir.data import readers
from xlir.data.schema import QADataset, content_version
from xlir.digest import sha256_file
from xlir.errors import ChecksumError, DatasetNotFoundError, XlirError
from xlir.paths import cache_dir, shared_data_dirs

SOURCES: dict[str, dict] = json.loads(Path(__file__).with_name("sources.json").read_text())


def dataset_names() -> list[str]:
    return sorted(SOURCES)


def source(name: str) -> dict:
    """The pinned description of a named dataset, or a clear error with the nearest names."""
    if name not in SOURCES:
        near = difflib.get_close_matches(name, SOURCES, n=2)
        hint = f" Did you mean {' or '.join(near)}?" if near else ""
        raise DatasetNotFoundError(
            f"unknown dataset '{name}'. Known: {', '.join(dataset_names())}.{hint}"
        )
    return SOURCES[name]


def download_cache() -> Path:
    return cache_dir() / "data"


def _origin(name: str) -> str:
    mirror = os.environ.get("XLIR_DATA_MIRROR")
    if mirror:
        return f"{mirror.rstrip('/')}/{source(name)['folder']}/"
    return source(name)["origin"]


def _verify(path: Path, expected: str) -> Path:
    actual = sha256_file(path)
    if actual != expected:
        raise ChecksumError(
            f"{path}: sha256 {actual} differs from the pinned {expected}. The file is not the "
            "published version; restore it or point XLIR_DATA_DIR at an unmodified copy."
        )
    return path


def download(name: str, filename: str, *, timeout: float = 60.0) -> Path:
    """Fetch one pinned file into the cache, atomically, and verify its sha256."""
    spec = source(name)
    expected = spec["files"][filename]
    target = download_cache() / spec["folder"] / filename
    if target.exists():
        return _verify(target, expected)
    url = _origin(name) + filename
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{filename}.")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            while block := resp.read(1 << 20):
                out.write(block)
        _verify(Path(tmp), expected)
        os.replace(tmp, target)
    except (urllib.error.URLError, OSError) as e:
        raise DatasetNotFoundError(
            f"dataset '{name}': {filename} is not in any local data folder and downloading "
            f"{url} failed ({e}). Set XLIR_DATA_DIR to a folder holding {spec['folder']}/."
        ) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def resolve(name: str, filename: str, *, allow_download: bool = True) -> Path:
    """Local path of one file of a named dataset, verified."""
    spec = source(name)
    expected = spec["files"][filename]
    for base in shared_data_dirs():
        candidate = base / spec["folder"] / filename
        if candidate.exists():
            return _verify(candidate, expected)
    if os.environ.get("XLIR_DATA_DIR"):
        raise DatasetNotFoundError(
            f"dataset '{name}': {filename} not found under XLIR_DATA_DIR="
            f"{os.environ['XLIR_DATA_DIR']} (expected {spec['folder']}/{filename})"
        )
    cached = download_cache() / spec["folder"] / filename
    if cached.exists():
        return _verify(cached, expected)
    if not allow_download:
        raise DatasetNotFoundError(f"dataset '{name}': {filename} is neither local nor cached")
    return download(name, filename)


def files_for(name: str, split: str | None = None, languages: list[str] | None = None) -> dict[str, str]:
    """The files (name -> pinned sha256) a load of this dataset needs."""
    spec = source(name)
    if spec["reader"] == "dream":
        split = split or spec["default_split"]
        if split not in spec["splits"]:
            raise XlirError(f"dataset '{name}' has splits {sorted(spec['splits'])}, not '{split}'")
        chosen = [spec["splits"][split]]
    else:
        if split not in (None, "test"):
            raise XlirError(f"dataset '{name}' has one split (test), not '{split}'")
        available = [f.removesuffix(".json") for f in spec["files"]]
        unknown = sorted(set(languages or []) - set(available))
        if unknown:
            raise XlirError(f"dataset '{name}' has no language {unknown}; it has {available}")
        chosen = [f"{lang}.json" for lang in (languages or available)]
    return {f: spec["files"][f] for f in chosen}


def load_dataset(name: str, split: str | None = None, languages: list[str] | None = None) -> QADataset:
    """Load a named dataset into the canonical tables (cached in memory per process)."""
    return _load(name, split, tuple(sorted(languages)) if languages else None)


@lru_cache(maxsize=8)
def _load(name: str, split: str | None, languages: tuple[str, ...] | None) -> QADataset:
    spec = source(name)
    wanted = files_for(name, split, list(languages) if languages else None)
    paths = {f: resolve(name, f) for f in wanted}
    if spec["reader"] == "dream":
        (path,) = paths.values()
        questions, candidates = readers.read_dream(path, source=name)
    else:
        questions, candidates = readers.concat(
            [readers.read_lareqa(p, lang=f.removesuffix(".json"), source=name) for f, p in paths.items()]
        )
    return QADataset(
        name=name if spec["reader"] != "dream" or not split else f"{name}:{split}",
        version=content_version(list(wanted.items())),
        questions=questions,
        candidates=candidates,
        meta={"license": spec["license"], "files": {f: str(p) for f, p in paths.items()}},
    )
