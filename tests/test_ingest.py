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
    """Ingest with no quiet period (the tests write complete files; the quiet period has tests of its own)."""
    landing, store, quarantine = dirs
    return ingest(landing, store, quarantine, config=CONFIG, **{"quiet_seconds": 0, **kwargs})


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


# ---------------------------------------------------------------- hostile and unlucky landing input

OLD = 120  # seconds: older than any quiet period used here


def age(path: Path, seconds: float = OLD) -> Path:
    """Set the modification time of a file, or of every file in a folder, ``seconds`` back."""
    import os
    import time

    stamp = time.time() - seconds
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(p, (stamp, stamp), follow_symlinks=False)
    return path


def good_jsonl(path: Path, tag: str) -> Path:
    """A valid dataset of its own (distinct content per tag)."""
    rows = [json.loads(line) for line in (FIXTURES / "good.jsonl").read_text(encoding="utf-8").splitlines()]
    path.write_text("\n".join(json.dumps(dict(r, parallel_id=f"{r['parallel_id']}-{tag}"), ensure_ascii=False)
                              for r in rows) + "\n", encoding="utf-8")
    return path


def announced(store: Path) -> list[str]:
    return [json.loads(line)["version"] for line in (store / "_announced.jsonl").read_text().splitlines() if line.strip()]


def test_a_name_that_is_not_utf8_is_an_error_of_its_own_and_the_others_go_on(dirs):
    import os

    landing, store, _ = dirs
    bad = Path(os.fsdecode(os.fsencode(landing) + b"/caf\xe9.parquet"))
    with open(bad, "wb") as f:  # pyarrow itself cannot open such a path
        pd.read_json(FIXTURES / "good.jsonl", lines=True).to_parquet(f)
    drop_lareqa_folder(landing, "z-elbe")
    result = run(dirs)
    assert [d.sources for d in result.ingested] == [["z-elbe/de.json", "z-elbe/en.json"]]
    (error,) = result.errors
    assert error["source"] == "caf\\xe9.parquet" and "not valid UTF-8" in error["error"]
    assert bad.exists() and "caf\\xe9.parquet" in result.summary()
    assert run(dirs).errors[0]["source"] == "caf\\xe9.parquet"  # still there, still explained, nothing else redone


def test_a_version_prefix_collision_or_a_bug_fails_only_its_own_entry(dirs, monkeypatch):
    landing, store, _ = dirs
    collide = good_jsonl(landing / "a-collide.jsonl", "c")
    version = sha(collide)[:16]
    (store / version).mkdir(parents=True)
    (store / version / "manifest.json").write_text(json.dumps({"version": version, "content_sha256": "0" * 64}))
    good_jsonl(landing / "b-bug.jsonl", "b")
    drop_lareqa_folder(landing, "z-elbe")
    real = ingest_module.run_validation

    def buggy(files, **kwargs):
        if files[0].name == "b-bug.jsonl":
            raise RuntimeError("a bug in the contract")
        return real(files, **kwargs)

    monkeypatch.setattr(ingest_module, "run_validation", buggy)
    result = run(dirs)
    assert [d.sources[0] for d in result.ingested] == ["z-elbe/de.json"]
    errors = {e["source"]: e["error"] for e in result.errors}
    assert "version prefix collision" in errors["a-collide.jsonl"]
    assert errors["b-bug.jsonl"].startswith("RuntimeError: a bug in the contract")
    assert pending(landing) == ["a-collide.jsonl", "b-bug.jsonl"]
    assert [p.name for p in store.iterdir() if p.name.startswith(".tmp")] == []


def test_a_version_whose_archive_move_fails_is_announced_and_archived_next_run(dirs, monkeypatch):
    landing, store, _ = dirs
    drop_jsonl(landing)
    real = ingest_module._move

    def failing(entry, folder):
        raise PermissionError(13, "Permission denied", str(folder))

    with monkeypatch.context() as patch:
        patch.setattr(ingest_module, "_move", failing)
        result = run(dirs)
    (done,) = result.ingested  # announced although its input could not be archived
    assert "moving it to the archive failed" in result.errors[0]["error"] and pending(landing) == ["tea.jsonl"]
    assert announced(store) == [done.version]
    again = run(dirs)
    assert again.ingested == [] and again.skipped[0].version == done.version and pending(landing) == []
    assert real is ingest_module._move


@pytest.mark.parametrize("step", ["archive move", "recording the announcement"])
def test_a_version_stored_but_never_announced_is_announced_by_the_next_run(dirs, monkeypatch, step):
    landing, store, _ = dirs
    drop_jsonl(landing)

    def crash(*args, **kwargs):
        raise SimulatedCrash(step)

    with monkeypatch.context() as patch:
        if step == "archive move":
            patch.setattr(ingest_module, "_move", crash)
        else:
            patch.setattr(ingest_module.Announced, "record", crash)
        with pytest.raises(SimulatedCrash):
            run(dirs)
    assert [e["status"] for e in ledger_lines(store)] == ["ingested"]
    result = run(dirs)
    (done,) = result.ingested
    assert done.recovered and done.version == ledger_lines(store)[0]["version"]
    assert pending(landing) == [] and announced(store) == [done.version]
    assert run(dirs).ingested == []


def test_a_store_from_before_announcements_is_not_announced_again(dirs):
    landing, store, _ = dirs
    drop_jsonl(landing)
    (done,) = run(dirs).ingested
    (store / "_announced.jsonl").unlink()  # as an older xlir left it
    assert run(dirs).ingested == [] and announced(store) == [done.version]


def test_a_ledger_line_cut_inside_a_multibyte_character_is_skipped_and_nothing_complete_is_lost(dirs):
    landing, store, _ = dirs
    drop_jsonl(landing)
    (first,) = run(dirs).ingested
    with open(store / "_ledger.jsonl", "ab") as f:
        f.write('{"hash": "ab", "sources": ["café'.encode()[:-1])  # cut inside the two bytes of "é"
    drop_lareqa_folder(landing)
    drop_jsonl(landing, "tea-again.jsonl")
    result = run(dirs)
    assert [d.sources[0] for d in result.ingested] == ["elbe/de.json"]
    assert [s.source for s in result.skipped] == ["tea-again.jsonl"] and result.skipped[0].version == first.version
    (warning,) = result.warnings
    assert "line 2" in warning and "UnicodeDecodeError" in warning and "warning" in result.summary()
    lines = (store / "_ledger.jsonl").read_bytes().split(b"\n")
    assert json.loads(lines[2])["status"] == "ingested"  # appended on a line of its own after the cut one
    assert len(run(dirs).warnings) == 1


# ---------------------------------------------------------------- the quiet period and ready markers


def test_a_file_still_being_written_waits_for_the_quiet_period(dirs):
    landing, store, _ = dirs
    path = drop_jsonl(landing)
    result = run(dirs, quiet_seconds=30)
    assert result.ingested == [] and versions(store) == [] and pending(landing) == ["tea.jsonl"]
    (note,) = result.waiting
    assert note.startswith("tea.jsonl: modified 0 s ago; taken once unchanged for 30 s") and "tea.jsonl.done" in note
    assert "waiting 1" in result.summary()
    age(path)
    assert len(run(dirs, quiet_seconds=30).ingested) == 1


def test_a_half_copied_folder_waits_until_all_its_files_are_quiet(dirs):
    landing, store, _ = dirs
    folder = drop_lareqa_folder(landing)
    age(folder)
    (folder / "de.json").write_bytes((folder / "de.json").read_bytes())  # still being copied
    assert run(dirs, quiet_seconds=30).waiting[0].startswith("elbe: modified")
    age(folder)
    (folder / ".en.json.x7Ab3").write_bytes(b"{")  # an upload tool's hidden temporary file: still uploading
    assert run(dirs, quiet_seconds=30).waiting and versions(store) == []
    age(folder)
    assert run(dirs, quiet_seconds=30).ingested[0].sources == ["elbe/de.json", "elbe/en.json"]


def test_a_ready_marker_takes_an_entry_at_once_and_travels_with_it(dirs):
    landing, store, quarantine = dirs
    drop_jsonl(landing)
    (landing / "tea.jsonl.done").write_bytes(b"")
    folder = drop_lareqa_folder(landing)
    (folder / "_SUCCESS").write_bytes(b"")
    (landing / "broken.jsonl").write_text("not json\n")
    (landing / "broken.jsonl.done").write_bytes(b"")
    result = run(dirs, quiet_seconds=3600)
    assert len(result.ingested) == 2 and len(result.quarantined) == 1 and result.waiting == []
    assert pending(landing) == []  # no marker left behind to wave through a later upload of the same name
    version = next(d.version for d in result.ingested if d.sources == ["tea.jsonl"])
    assert sorted(p.name for p in (landing / "_processed" / version).iterdir()) == ["tea.jsonl", "tea.jsonl.done"]
    assert (quarantine / result.quarantined[0].version / "input" / "broken.jsonl.done").exists()


def test_data_modified_after_its_marker_waits_and_a_marker_alone_is_reported(dirs):
    import time

    landing, _, _ = dirs
    marker = landing / "tea.jsonl.done"
    marker.write_bytes(b"")
    age(marker, 60)
    drop_jsonl(landing)
    (landing / "gone.jsonl.done").write_bytes(b"")
    result = run(dirs, quiet_seconds=30)
    assert result.ingested == [] and "after its ready marker" in result.waiting[0]
    assert result.ignored == ["gone.jsonl.done: a ready marker for gone.jsonl, which is not in landing"]
    assert time.time() - marker.stat().st_mtime > 50


def test_the_quiet_period_comes_from_the_environment_and_defaults_to_30_seconds(dirs, monkeypatch):
    landing, _, quarantine = dirs
    _, store, _ = dirs
    drop_jsonl(landing)
    monkeypatch.delenv("XLIR_INGEST_QUIET_SECONDS", raising=False)
    assert ingest_module.quiet_seconds_setting() == 30
    assert "unchanged for 30 s" in ingest(landing, store, quarantine, config=CONFIG).waiting[0]
    monkeypatch.setenv("XLIR_INGEST_QUIET_SECONDS", "soon")
    with pytest.raises(XlirError, match="XLIR_INGEST_QUIET_SECONDS must be a number"):
        ingest(landing, store, quarantine, config=CONFIG)
    monkeypatch.setenv("XLIR_INGEST_QUIET_SECONDS", "0")
    assert len(ingest(landing, store, quarantine, config=CONFIG).ingested) == 1
    with pytest.raises(XlirError, match=">= 0"):
        ingest_module.quiet_seconds_setting(-1)


# ---------------------------------------------------------------- symbolic links and special files


def test_symlinks_are_reported_never_followed_never_archived(dirs, tmp_path, monkeypatch):
    import os

    landing, store, _ = dirs
    outside = good_jsonl(tmp_path / "outside.jsonl", "o")
    original = sha(outside)
    (landing / "linked.jsonl").symlink_to(outside)
    (landing / "root").symlink_to("/")
    folder = drop_lareqa_folder(landing, "mixed")
    (folder / "more.jsonl").symlink_to(outside)
    scanned = []
    real_scan = ingest_module._scan
    monkeypatch.setattr(ingest_module, "_scan", lambda entry: scanned.append(entry.name) or real_scan(entry))
    result = run(dirs)
    assert result.ingested == [] and result.errors == [] and versions(store) == []
    notes = sorted(result.ignored)
    assert notes[0].startswith("linked.jsonl: a symbolic link; links are never followed")
    assert notes[1].startswith("mixed: holds symbolic links (mixed/more.jsonl)")
    assert notes[2].startswith("root: a symbolic link")
    assert scanned == ["mixed"]  # the link to / was never walked
    assert os.readlink(landing / "linked.jsonl") == str(outside) and sha(outside) == original
    assert pending(landing) == ["linked.jsonl", "mixed", "root"] and not (landing / "_processed").exists() or \
        list((landing / "_processed").iterdir()) == []


def test_fifos_are_never_opened(dirs):
    import os

    landing, _, _ = dirs
    os.mkfifo(landing / "pipe.jsonl")
    folder = drop_lareqa_folder(landing, "with-pipe")
    os.mkfifo(folder / "fr.json")
    result = run(dirs)
    assert sorted(result.ignored) == [
        "pipe.jsonl: not a regular file or folder (a FIFO, socket or device)",
        "with-pipe: holds files that are not regular files (with-pipe/fr.json)",
    ]


# ---------------------------------------------------------------- quarantine Data Docs


def test_quarantine_data_docs_show_row_values_as_text_not_markup(dirs):
    from html.parser import HTMLParser

    landing, _, quarantine = dirs
    rows = [json.loads(line) for line in (FIXTURES / "good.jsonl").read_text(encoding="utf-8").splitlines()]
    rows[0]["lang"] = "<img src=x onerror=alert(1)>"
    rows[1]["question"] = "<script>alert(2)</script>\x07 Wo?"
    (landing / "xss.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    (q,) = run(dirs).quarantined
    assert {"language_code", "text_chars[question]"} <= set(q.failed_checks)

    class Page(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags, self.text, self.in_script = [], [], False

        def handle_starttag(self, tag, attrs):
            self.tags.append((tag, dict(attrs)))
            self.in_script = tag == "script"

        def handle_endtag(self, tag):
            self.in_script = False

        def handle_data(self, data):
            self.text.append(("script:" if self.in_script else "") + data)

    pages = list((quarantine / q.version / "data_docs").rglob("*.html"))
    assert pages
    seen = ""
    for page in pages:
        parser = Page()
        parser.feed(page.read_text(encoding="utf-8"))
        assert not [t for t, attrs in parser.tags if "onerror" in attrs or attrs.get("src") == "x"], page
        assert not [d for d in parser.text if d.startswith("script:") and "alert(" in d], page
        seen += "".join(parser.text)
    assert "<img src=x onerror=alert(1)>" in seen  # shown to the reader, as text
    assert "alert(2)</script>" in seen  # the example's window around the bad character


# ---------------------------------------------------------------- one entry never blocks or loses another


def _non_utf8_name(landing: Path) -> Path:
    import os

    path = Path(os.fsdecode(os.fsencode(landing) + b"/\xff-latin1-caf\xe9.jsonl"))
    good_jsonl(path, "latin1")
    return path


def _collision(landing: Path) -> Path:
    path = good_jsonl(landing / "collide.jsonl", "collide")
    store = landing.parent / "store" / sha(path)[:16]
    store.mkdir(parents=True)
    (store / "manifest.json").write_text(json.dumps({"version": sha(path)[:16], "content_sha256": "f" * 64}))
    return path


def _fifo(landing: Path) -> None:
    import os

    os.mkfifo(landing / "fifo.jsonl")


def _folder_with_link(landing: Path) -> Path:
    folder = drop_lareqa_folder(landing, "with-link")
    (folder / "es.json").symlink_to(FIXTURES / "lareqa" / "en.json")
    return folder


def _invalid(landing: Path) -> Path:
    rows = [json.loads(line) for line in (FIXTURES / "good.jsonl").read_text(encoding="utf-8").splitlines()]
    rows[0]["answer_sentence"] = "Coffee comes from Ethiopia."
    path = landing / "invalid.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    return path


def _half_copied(landing: Path) -> Path:
    folder = drop_lareqa_folder(landing, "half-copied")
    age(folder)
    (folder / "en.json").write_bytes((folder / "en.json").read_bytes())
    return folder


def _stale_marker(landing: Path) -> Path:
    (landing / "restarted.jsonl.done").write_bytes(b"")
    age(landing / "restarted.jsonl.done", 600)
    return good_jsonl(landing / "restarted.jsonl", "restarted")


BAD_LANDING = {
    # kind: (how to drop it, what becomes of it)
    "file name not UTF-8": (_non_utf8_name, "error"),
    "version-prefix collision": (_collision, "error"),
    "a bug while validating": (lambda landing: good_jsonl(landing / "bug.jsonl", "bug"), "error"),
    "archive move fails": (lambda landing: good_jsonl(landing / "unmovable.jsonl", "unmovable"), "ingested+error"),
    "symlink to a file": (lambda landing: (landing / "link.jsonl").symlink_to(FIXTURES / "good.jsonl"), "ignored"),
    "symlink to /": (lambda landing: (landing / "root-link").symlink_to("/"), "ignored"),
    "folder holding a symlink": (_folder_with_link, "ignored"),
    "FIFO": (_fifo, "ignored"),
    "folder without data files": (lambda landing: (landing / "docs").mkdir() or (landing / "docs" / "README").write_text("x"), "ignored"),
    "marker without its entry": (lambda landing: (landing / "missing.jsonl.done").write_bytes(b""), "ignored"),
    "file still being written": (lambda landing: good_jsonl(landing / "growing.jsonl", "growing"), "waiting"),
    "half-copied folder": (_half_copied, "waiting"),
    "data newer than its marker": (_stale_marker, "waiting"),
    "upload under a partial name": (lambda landing: good_jsonl(landing / "upload.jsonl.part", "part"), "left"),
    "invalid rows": (_invalid, "quarantined"),
    "not JSON": (lambda landing: (landing / "garbage.json").write_bytes(b"\x00\x01 not json"), "quarantined"),
    "empty file": (lambda landing: (landing / "empty.jsonl").write_bytes(b""), "quarantined"),
    "markup in values": (lambda landing: (landing / "markup.jsonl").write_text(json.dumps(
        {"parallel_id": "1", "lang": "<img src=x onerror=alert(1)>", "question": "<b>Q?</b>", "answer_sentence": "A.", "paragraph": "A."})),
        "quarantined"),
}


def _files(root: Path) -> dict[str, list[str]]:
    """sha256 -> where each regular file under root is (links and FIFOs not followed)."""
    import os

    found: dict[str, list[str]] = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink():
                found.setdefault(sha(path), []).append(str(path))
    return found


def test_no_landing_entry_is_lost_or_blocked_by_another(dirs, monkeypatch):
    """Every kind of bad landing input at once, with good datasets sorted after them: every good one
    is ingested and announced in the same run, and every input file is still somewhere."""
    landing, store, quarantine = dirs
    for make, outcome in BAD_LANDING.values():
        if outcome != "waiting":
            make(landing)
    goods = [good_jsonl(landing / f"zz-good-{n}.jsonl", f"good{n}") for n in range(2)]
    goods.append(drop_lareqa_folder(landing, "zz-good-elbe"))
    age(landing)  # all complete a while ago; the waiting kinds come now
    for make, outcome in BAD_LANDING.values():
        if outcome == "waiting":
            make(landing)
    inputs = {h for h in _files(landing) if h != sha(landing / "empty.jsonl")} | {sha(landing / "empty.jsonl")}
    real_validation, real_move = ingest_module.run_validation, ingest_module._move

    def validation(files, **kwargs):
        if files[0].name == "bug.jsonl":
            raise KeyError("a bug")
        return real_validation(files, **kwargs)

    def move(entry, folder):
        if entry.name == "unmovable.jsonl" and "_processed" in str(folder):
            raise OSError(5, "Input/output error")
        return real_move(entry, folder)

    monkeypatch.setattr(ingest_module, "run_validation", validation)
    monkeypatch.setattr(ingest_module, "_move", move)
    result = run(dirs, quiet_seconds=30)

    sources = [d.sources[0] for d in result.ingested]
    blocked = [g.name for g in goods if not any(s.startswith(g.name) for s in sources)]
    assert blocked == [], result.summary()
    assert "unmovable.jsonl" in sources and len(result.ingested) == len(goods) + 1
    outcome = {
        "error": {e["source"] for e in result.errors},
        "ignored": {n.split(":")[0] for n in result.ignored},
        "waiting": {n.split(":")[0] for n in result.waiting},
        "quarantined": {s for q in result.quarantined for s in q.sources},
    }
    assert len(result.errors) == 4 and len(result.ignored) == 6 and len(result.waiting) == 3, result.summary()
    assert len(result.quarantined) == 4 and (landing / "upload.jsonl.part").exists()
    assert {"bug.jsonl", "collide.jsonl", "unmovable.jsonl", "\\xff-latin1-caf\\xe9.jsonl"} == outcome["error"]
    assert {"growing.jsonl", "half-copied", "restarted.jsonl"} == outcome["waiting"]

    everywhere = {**_files(landing), **_files(store), **_files(quarantine)}
    lost = [h for h in inputs if h not in everywhere]
    stored = [v for v in versions(store) if json.loads((store / v / "manifest.json").read_text())["content_sha256"] != "f" * 64]
    unannounced = sorted(set(stored) - set(announced(store)))
    assert lost == [] and unannounced == [], (lost, unannounced)
    assert set(announced(store)) == {d.version for d in result.ingested}
    print(f"\nbad landing kinds tried: {len(BAD_LANDING)}; entries lost: {len(lost) + len(unannounced)}; "
          f"entries blocked by another: {len(blocked)}")
