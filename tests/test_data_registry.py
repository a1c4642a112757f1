"""Dataset resolution: local folders first, else a pinned, sha256-checked download.

Downloads are exercised against a file server on 127.0.0.1, never the network.
"""

import functools
import http.server
import shutil
import threading

import pytest

from xlir.data import registry
from xlir.errors import ChecksumError, DatasetNotFoundError, XlirError


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A local HTTP server laid out like the upstream repositories, and no local data."""
    root = tmp_path / "mirror"
    shutil.copytree(registry.resolve("dream", "test.json").parent, root / "dream")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(registry, "shared_data_dirs", lambda: [])
    monkeypatch.delenv("XLIR_DATA_DIR", raising=False)
    monkeypatch.setenv("XLIR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XLIR_DATA_MIRROR", f"http://127.0.0.1:{server.server_address[1]}")
    registry._load.cache_clear()
    yield root
    server.shutdown()
    registry._load.cache_clear()


def test_missing_local_data_is_downloaded_verified_and_cached(mirror, tmp_path):
    path = registry.resolve("dream", "test.json")
    assert path == tmp_path / "cache" / "data" / "dream" / "test.json"
    assert registry.load_dataset("dream").questions.shape[0] == 2041
    (mirror / "dream" / "test.json").unlink()  # a second resolve must not need the server
    assert registry.resolve("dream", "test.json") == path


def test_tampered_download_is_rejected_and_leaves_nothing_in_the_cache(mirror, tmp_path):
    with open(mirror / "dream" / "test.json", "ab") as f:
        f.write(b" ")
    with pytest.raises(ChecksumError, match="differs from the pinned"):
        registry.resolve("dream", "test.json")
    assert not any((tmp_path / "cache" / "data" / "dream").iterdir())


def test_unreachable_origin_gives_a_clear_error(mirror, monkeypatch):
    monkeypatch.setenv("XLIR_DATA_MIRROR", "http://127.0.0.1:9")
    with pytest.raises(DatasetNotFoundError, match="Set XLIR_DATA_DIR"):
        registry.resolve("dream", "dev.json")


def test_data_dir_with_a_modified_file_is_refused(tmp_path, monkeypatch):
    (tmp_path / "dream").mkdir()
    (tmp_path / "dream" / "test.json").write_text("[]")
    monkeypatch.setenv("XLIR_DATA_DIR", str(tmp_path))
    with pytest.raises(ChecksumError):
        registry.resolve("dream", "test.json")
    with pytest.raises(DatasetNotFoundError, match="not found under XLIR_DATA_DIR"):
        registry.resolve("dream", "train.json")


def test_unknown_names_splits_and_languages_are_explained():
    with pytest.raises(DatasetNotFoundError, match="Did you mean xquad-r"):
        registry.source("xquad")
    with pytest.raises(XlirError, match="splits"):
        registry.files_for("dream", split="validation")
    with pytest.raises(XlirError, match="no language"):
        registry.files_for("mlqa-r", languages=["th"])
