"""Ingest: valid data becomes a versioned dataset, invalid data goes to quarantine, content is
processed once, nothing is deleted, and a crash at any step leaves nothing half-written."""

import fcntl
import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from xlir.data.readers import read_lareqa
from xlir.errors import XlirError
from xlir.validation import ValidationConfig, ingest, load_ingested
from xlir.validation import ingestion as ingest_module

FIXTURES = Path(__file__).parent / "fixtures" / "validation"
CONFIG = ValidationConfig(eval_datasets=[])


class SimulatedCrash(BaseException):
    """Stands for the process dying: not an error ingest could catch and handle."""


@pytest.fixture
def dirs(tmp_path):
    landing, store, quarantine = tmp_path / "landing", tmp_path / "store", tmp_path / "quarantine"
    landing.mkdir()
    return landing, store, quarantine


def drop_lareqa_folder(landing: Path, name: str = "elbe") -> Path:
    folder = landing / name
    shutil.copytree(FIXTURES / "lareqa", folder)
    (folder / "LICENSE").write_text("CC BY-SA 4.0\n", encoding="utf-8")
    return folder


def drop_jsonl(landing: Path, name: str = "tea.jsonl") -> Path:
    path = landing / name
    path.write_bytes((FIXTURES / "good.jsonl").read_bytes())
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(dirs, **kwargs):
    landing, store, quarantine = dirs
    return ingest(landing, store, quarantine, config=CONFIG, **kwargs)


def versions(store: Path) -> list[str]:
    return sorted(p.name for p in store.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def ledger_lines(store: Path) -> list[dict]:
    return [json.loads(line) for line in (store / "_ledger.jsonl").read_text(encoding="utf-8").splitlines()]


def pending(landing: Path) -> list[str]:
    return sorted(p.name for p in landing.iterdir() if not p.name.startswith(("_", ".")))


def test_valid_file_becomes_a_versioned_dataset_and_moves_to_the_archive(dirs):
    landing, store, _ = dirs
    original = sha(drop_jsonl(landing))
    result = run(dirs)
    (done,) = result.ingested
    assert done.version == original[:16] and done.content_sha256 == original
    assert done.rows_per_language == {"de": 2, "en": 2, "ru": 2}
    folder = store / done.version
    assert sorted(p.name for p in folder.iterdir()) == ["candidates.parquet", "manifest.json", "questions.parquet", "validation.json"]
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["sources"] == [{"name": "tea.jsonl", "sha256": original, "bytes": (FIXTURES / "good.jsonl").stat().st_size,
                                    "format": "jsonl", "languages": ["de", "en", "ru"]}]
    assert manifest["validation"]["passed"] is True and manifest["validation"]["suite_version"] >= 1
    assert manifest["rows"]["questions_per_language"] == {"de": 2, "en": 2, "ru": 2}
    assert pending(landing) == []
    archived = landing / "_processed" / done.version / "tea.jsonl"
    assert sha(archived) == original
    dataset = load_ingested(store, done.version)
    assert len(dataset.questions) == 6 and set(dataset.languages) == {"de", "en", "ru"}


def test_a_folder_is_one_dataset_and_its_tables_are_the_canonical_ones(dirs):
    landing, store, _ = dirs
    drop_lareqa_folder(landing)
    (done,) = run(dirs).ingested
    assert done.sources == ["elbe/de.json", "elbe/en.json"]
    dataset = load_ingested(store, done.version)
    expected = pd.concat([read_lareqa(FIXTURES / "lareqa" / f"{lang}.json", source=lang)[0] for lang in ("de", "en")], ignore_index=True)
    pd.testing.assert_frame_equal(dataset.questions, expected, check_dtype=False)
    assert (landing / "_processed" / done.version / "elbe" / "LICENSE").exists()


def test_ingest_is_idempotent_and_recognises_the_same_content_under_a_new_name(dirs):
    landing, store, _ = dirs
    drop_jsonl(landing)
    (first,) = run(dirs).ingested
    again = run(dirs)
    assert again.ingested == again.quarantined == again.skipped == []
    drop_jsonl(landing, "tea-copy-renamed.jsonl")
    result = run(dirs)
    assert result.ingested == [] and [s.source for s in result.skipped] == ["tea-copy-renamed.jsonl"]
    assert result.skipped[0].version == first.version and result.skipped[0].status == "ingested"
    assert versions(store) == [first.version]
    assert (landing / "_processed" / first.version / "tea-copy-renamed.jsonl").exists()
    assert len(ledger_lines(store)) == 1


def test_invalid_file_goes_to_quarantine_next_to_a_json_and_data_docs_report(dirs):
    landing, store, quarantine = dirs
    rows = [json.loads(line) for line in (FIXTURES / "good.jsonl").read_text(encoding="utf-8").splitlines()]
    rows[0]["answer_sentence"] = "Coffee comes from Ethiopia."
    bad = landing / "bad.jsonl"
    bad.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    original = sha(bad)
    result = run(dirs)
    (q,) = result.quarantined
    assert q.failed_checks == ["answer_in_paragraph"]
    folder = quarantine / original[:16]
    assert sha(folder / "input" / "bad.jsonl") == original
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    assert report["passed"] is False
    assert "FAIL answer_in_paragraph" in (folder / "report.txt").read_text(encoding="utf-8")
    assert "answer_in_paragraph" in (folder / "data_docs" / "index.html").read_text(encoding="utf-8") or any(
        "answer_in_paragraph" in p.read_text(encoding="utf-8") for p in (folder / "data_docs").rglob("*.html")
    )
    assert versions(store) == [] and pending(landing) == []
    bad.write_bytes((folder / "input" / "bad.jsonl").read_bytes())  # dropped again: recognised
    again = run(dirs)
    assert again.quarantined == [] and again.skipped[0].status == "quarantined"
    assert sorted(p.name for p in (folder / "input").iterdir()) == ["bad.1.jsonl", "bad.jsonl"]


def test_unreadable_file_is_quarantined_with_the_parse_error(dirs):
    landing, _, quarantine = dirs
    (landing / "de.json").write_text('{"data": [{"paragraphs": ', encoding="utf-8")
    (q,) = run(dirs).quarantined
    assert q.failed_checks == ["parse"]
    report = json.loads(Path(q.report).read_text(encoding="utf-8"))
    assert "not valid JSON" in report["checks"][0]["examples"][0]["error"]


def test_hidden_underscore_and_partial_uploads_are_left_alone(dirs):
    landing, store, _ = dirs
    drop_jsonl(landing, ".uploading.jsonl")
    drop_jsonl(landing, "tea.jsonl.part")
    (landing / "empty-folder").mkdir()
    result = run(dirs)
    assert result.ingested == [] and result.ignored == ["empty-folder: no data files (.json, .jsonl, .ndjson, .parquet)"]
    assert sorted(p.name for p in landing.iterdir()) == [".uploading.jsonl", "_processed", "empty-folder", "tea.jsonl.part"]


CRASH_POINTS = {
    # step: (function in xlir.validation.ingestion to break, condition on its arguments)
    "writing the dataset": ("_write_text", lambda path, *a: path.name == "manifest.json"),
    "publishing rename": ("_rename", lambda *a: True),
    "ledger append": ("Ledger.record", lambda *a: True),
    "archive move": ("_move", lambda *a: True),
}


@pytest.mark.parametrize("step", list(CRASH_POINTS))
def test_a_crash_at_any_step_loses_nothing_and_the_next_run_completes_the_ingest(dirs, monkeypatch, step):
    landing, store, _ = dirs
    drop_lareqa_folder(landing)
    originals = {p.name: sha(p) for p in (landing / "elbe").iterdir()}
    name, when = CRASH_POINTS[step]
    owner = ingest_module.Ledger if "." in name else ingest_module
    attr = name.split(".")[-1]
    real = getattr(owner, attr)

    def crashing(*args, **kwargs):
        if when(*args[1:] if owner is ingest_module.Ledger else args):
            raise SimulatedCrash(step)
        return real(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(owner, attr, crashing)
        with pytest.raises(SimulatedCrash):
            run(dirs)

    # After the crash: every visible store folder is a complete dataset; the input is intact somewhere.
    for version in versions(store):
        assert {"manifest.json", "questions.parquet", "candidates.parquet"} <= {p.name for p in (store / version).iterdir()}
    place = landing / "elbe" if (landing / "elbe").exists() else next((landing / "_processed").glob("*/elbe"))
    assert {p.name: sha(p) for p in place.iterdir()} == originals

    result = run(dirs)
    assert len(result.ingested) + len(result.skipped) == 1 and not result.quarantined and not result.errors
    (version,) = versions(store)
    assert [p.name for p in store.iterdir() if p.name.startswith(".tmp")] == []
    assert pending(landing) == []
    archived = landing / "_processed" / version / "elbe"
    assert {p.name: sha(p) for p in archived.iterdir()} == originals
    assert [e["status"] for e in ledger_lines(store)] == ["ingested"]
    assert len(load_ingested(store, version).questions) == 6
    assert run(dirs).ingested == []


def test_a_crash_while_quarantining_leaves_the_file_in_landing_or_quarantine(dirs, monkeypatch):
    landing, _, quarantine = dirs
    (landing / "broken.jsonl").write_text("not json\n", encoding="utf-8")

    def crash(*args, **kwargs):
        raise SimulatedCrash("move")

    with monkeypatch.context() as patch:
        patch.setattr(ingest_module, "_move", crash)
        with pytest.raises(SimulatedCrash):
            run(dirs)
    assert (landing / "broken.jsonl").exists()
    result = run(dirs)
    assert len(result.skipped) == 1 and pending(landing) == []
    (folder,) = quarantine.iterdir()
    assert (folder / "input" / "broken.jsonl").read_text(encoding="utf-8") == "not json\n"
    assert (folder / "report.json").exists()


def test_one_ingest_at_a_time_per_store(dirs):
    landing, store, _ = dirs
    store.mkdir()
    with open(store / ".ingest.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(XlirError, match="another ingest is running"):
            run(dirs)


def test_output_folders_inside_landing_must_be_ignored_names(dirs):
    landing, _, quarantine = dirs
    with pytest.raises(XlirError, match="inside the landing folder"):
        ingest(landing, landing / "store", quarantine, config=CONFIG)
