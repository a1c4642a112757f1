"""Ingest: turn files dropped in a landing folder into validated, versioned Parquet datasets.

Landing folder (a local folder or a mounted volume / object-store mount)
    Each top-level entry is one dataset:

    - a file (``.json`` LAReQA, ``.jsonl``/``.ndjson``, ``.parquet``) is a dataset by itself;
    - a folder is one dataset made of all the data files inside it (at any depth), validated
      together: a LAReQA dataset is one file per language, so drop ``mydata/de.json``,
      ``mydata/en.json``, ... as the folder ``mydata/``. Other files in it (LICENSE, README)
      travel with it but are not read.

    Names starting with ``.`` or ``_`` are ignored (``_processed/`` lives there), and so are names
    ending in ``.part``/``.tmp``/``.crdownload``. Upload a file or folder under such a name and
    rename it when complete, so ingest never sees half an upload.

Identity
    A dataset is identified by its content: the sha256 of its file (or, for a folder, of the
    sorted sha256s of its data files; names do not count). ``version`` is the first 16 hex
    digits. The ledger (``STORE/_ledger.jsonl``, append-only, one JSON line per outcome) maps
    content hashes to outcomes, so a dataset is processed once and the same content dropped
    again under another name is recognised and not processed twice. (Caveat: a LAReQA file
    whose language comes from its name, renamed to another language, counts as the same content.)

Outcomes (nothing is ever deleted; every input ends in exactly one place)
    - valid: ``STORE/<version>/`` gets ``questions.parquet``, ``candidates.parquet``,
      ``validation.json`` (the full report) and ``manifest.json`` (source files and hashes, row
      counts per language, validation result, suite version, thresholds). The landing entry then
      moves to the archive, ``LANDING/_processed/<version>/<name>`` by default: kept, out of
      the way, next to nothing that would read it again.
    - invalid (including unreadable): ``QUARANTINE/<version>/`` gets ``report.json``,
      ``report.txt`` (the summary) and ``data_docs/`` (a Great Expectations Data Docs site;
      ``data_docs/index.html``); the landing entry moves into ``QUARANTINE/<version>/input/``.
    - already known content: the landing entry moves next to the earlier outcome (archive or
      quarantine ``input/``, with a numbered name when taken) and is reported as a duplicate.
      ``retry_quarantined=True`` validates known-invalid content again (after a threshold change).

Crash safety
    A dataset is written to ``STORE/.tmp-<version>-<pid>/``, every file and the folder fsynced,
    then renamed to ``STORE/<version>/`` in one atomic step; only then is the ledger appended
    (fsynced) and the input moved. A crash before the rename leaves the input in landing and
    at most a hidden ``.tmp-*`` folder, which the next run removes (it is incomplete output,
    not user data) before doing the work again. A crash after the rename leaves a complete
    version without a ledger line: the next run finds its manifest, records it, and archives the
    input. Quarantine works the same way (report first, ledger next, input last). One ingest
    runs at a time per store (an exclusive lock on ``STORE/.ingest.lock``).

The store must be a POSIX filesystem (atomic rename, fsync); landing and quarantine may be a
mount where a move is a copy followed by a delete of the copied original.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel, Field

import xlir
from xlir.digest import sha256_file
from xlir.errors import XlirError
from xlir.paths import cache_dir
from xlir.validation.config import ValidationConfig
from xlir.validation.parse import canonical_tables, data_files
from xlir.validation.report import ValidationReport
from xlir.validation.validate import run_validation

LEDGER = "_ledger.jsonl"
LOCK = ".ingest.lock"
ARCHIVE = "_processed"
IGNORED_SUFFIXES = (".part", ".tmp", ".crdownload")
MANIFEST_FORMAT = "xlir.validated-dataset/1"


def default_store() -> Path:
    return cache_dir() / "validated"


def default_quarantine() -> Path:
    return cache_dir() / "quarantine"


class IngestedDataset(BaseModel):
    version: str
    content_sha256: str
    sources: list[str]
    path: str
    rows: int
    rows_per_language: dict[str, int]
    recovered: bool = Field(False, description="completed an ingest a crash had interrupted")


class QuarantinedDataset(BaseModel):
    version: str
    content_sha256: str
    sources: list[str]
    path: str
    report: str
    failed_checks: list[str]


class SkippedDuplicate(BaseModel):
    source: str
    version: str
    status: str = Field(description="what the earlier copy became: ingested or quarantined")
    moved_to: str


class IngestResult(BaseModel):
    ingested: list[IngestedDataset] = Field(default_factory=list)
    quarantined: list[QuarantinedDataset] = Field(default_factory=list)
    skipped: list[SkippedDuplicate] = Field(default_factory=list)
    ignored: list[str] = Field(default_factory=list, description="landing entries left alone, and why")
    errors: list[dict] = Field(default_factory=list, description="entries left in landing after an I/O error")

    def summary(self) -> str:
        lines = [
            f"ingested {len(self.ingested)}, quarantined {len(self.quarantined)}, "
            f"duplicates {len(self.skipped)}, errors {len(self.errors)}"
        ]
        for d in self.ingested:
            note = " (completed an interrupted ingest)" if d.recovered else ""
            langs = ", ".join(f"{k} {v}" for k, v in sorted(d.rows_per_language.items()))
            lines.append(f"  ingested    {', '.join(d.sources)} -> {d.path} ({d.rows} rows: {langs}){note}")
        for q in self.quarantined:
            lines.append(f"  quarantined {', '.join(q.sources)} -> {q.path} (failed: {', '.join(q.failed_checks)})")
        for s in self.skipped:
            lines.append(f"  duplicate   {s.source}: same content as {s.status} version {s.version}; moved to {s.moved_to}")
        for e in self.errors:
            lines.append(f"  error       {e['source']}: {e['error']} (left in landing)")
        for note in self.ignored:
            lines.append(f"  ignored     {note}")
        return "\n".join(lines)


def ingest(
    landing: str | Path,
    store: str | Path | None = None,
    quarantine: str | Path | None = None,
    config: ValidationConfig | None = None,
    archive: str | Path | None = None,
    retry_quarantined: bool = False,
) -> IngestResult:
    """Process every new dataset in ``landing`` (see the module docstring for the layout)."""
    landing = Path(landing).expanduser()
    if not landing.is_dir():
        raise XlirError(f"landing folder {landing} does not exist")
    store = Path(store).expanduser() if store else default_store()
    quarantine = Path(quarantine).expanduser() if quarantine else default_quarantine()
    archive = Path(archive).expanduser() if archive else landing / ARCHIVE
    for name, folder in (("store", store), ("quarantine", quarantine), ("archive", archive)):
        _outside_landing_scan(landing, folder, name)
        folder.mkdir(parents=True, exist_ok=True)
    config = config or ValidationConfig()
    result = IngestResult()
    with _lock(store):
        _remove_stale_temp(store)
        _remove_stale_temp(quarantine)
        ledger = Ledger(store / LEDGER)
        for entry in sorted(landing.iterdir()):
            if entry.name.startswith((".", "_")) or entry.name.endswith(IGNORED_SUFFIXES):
                continue
            files = [entry] if entry.is_file() else data_files(entry) if entry.is_dir() else []
            if not files:
                result.ignored.append(f"{entry.name}: no data files (.json, .jsonl, .ndjson, .parquet)")
                continue
            try:
                _process(entry, files, store, quarantine, archive, config, ledger, result, retry_quarantined)
            except OSError as e:
                result.errors.append({"source": entry.name, "error": f"{e.__class__.__name__}: {e}"})
    return result


def _process(entry, files, store, quarantine, archive, config, ledger, result, retry_quarantined) -> None:
    content = content_hash(files)
    version = content[:16]
    known = ledger.get(content)
    if known and not (retry_quarantined and known["status"] == "quarantined"):
        where = archive / version if known["status"] == "ingested" else quarantine / version / "input"
        moved = _move(entry, where)
        result.skipped.append(SkippedDuplicate(source=entry.name, version=version, status=known["status"], moved_to=str(moved)))
        return
    target = store / version
    manifest = _read_manifest(target)
    if manifest is not None:
        if manifest.get("content_sha256") != content:
            raise XlirError(f"{target} holds another dataset (content hash differs); version prefix collision")
        _finish_ingest(entry, manifest, target, archive, ledger, result, recovered=True)
        return
    validation = run_validation(files, config=config)
    report = validation.report
    if content_hash(files) != content:
        raise OSError("the files changed while being validated (an upload still in progress?); left in landing")
    if report.passed:
        manifest = _publish(entry, files, content, validation, store, config)
        _finish_ingest(entry, manifest, target, archive, ledger, result, recovered=False)
    else:
        _quarantine(entry, files, content, report, quarantine, config, ledger, result)


# ---------------------------------------------------------------- valid datasets


def _publish(entry: Path, files: list[Path], content: str, validation, store: Path, config: ValidationConfig) -> dict:
    """Write the dataset to a temporary folder, fsync it, and rename it into place atomically."""
    import pandas as pd

    version = content[:16]
    tmp = store / f".tmp-{version}-{os.getpid()}"
    tmp.mkdir()
    questions, candidates = [], []
    for parsed in validation.files:
        q, c = canonical_tables(parsed)
        questions.append(q)
        candidates.append(c)
    questions = pd.concat(questions, ignore_index=True)
    candidates = pd.concat(candidates, ignore_index=True)
    questions.to_parquet(tmp / "questions.parquet", index=False)
    candidates.to_parquet(tmp / "candidates.parquet", index=False)
    report: ValidationReport = validation.report
    _write_text(tmp / "validation.json", report.model_dump_json(indent=2))
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": version,
        "content_sha256": content,
        "name": entry.name,
        "sources": [_source_record(entry, f, p) for f, p in zip(files, validation.files)],
        "rows": {
            "questions": len(questions),
            "candidates": len(candidates),
            "questions_per_language": {str(k): int(v) for k, v in questions["lang"].value_counts().sort_index().items()},
            "candidates_per_language": {str(k): int(v) for k, v in candidates["lang"].value_counts().sort_index().items()},
        },
        "validation": {
            "passed": report.passed,
            "suite": report.suite,
            "suite_version": report.suite_version,
            "checks": [{"name": c.name, "passed": c.passed, "observed": c.observed, "threshold": c.threshold} for c in report.checks],
            "skipped": report.skipped,
        },
        "config": config.model_dump(mode="json"),
        "ingested_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "xlir_version": xlir.__version__,
    }
    _write_text(tmp / "manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False))
    for path in tmp.iterdir():
        _fsync(path)
    _fsync(tmp)
    _rename(tmp, store / version)
    _fsync(store)
    return manifest


def _finish_ingest(entry, manifest, target, archive, ledger, result, recovered: bool) -> None:
    version = manifest["version"]
    ledger.record(
        {"hash": manifest["content_sha256"], "version": version, "status": "ingested",
         "sources": [entry.name], "path": str(target)}
    )
    _move(entry, archive / version)
    result.ingested.append(
        IngestedDataset(
            version=version, content_sha256=manifest["content_sha256"],
            sources=[s["name"] for s in manifest["sources"]], path=str(target),
            rows=manifest["rows"]["questions"], rows_per_language=manifest["rows"]["questions_per_language"],
            recovered=recovered,
        )
    )


def _source_record(entry: Path, file: Path, parsed) -> dict:
    rel = file.name if file == entry else str(Path(entry.name) / file.relative_to(entry))
    langs = sorted({str(v) for v in parsed.questions["lang"]}) if parsed.questions is not None else []
    return {"name": rel, "sha256": sha256_file(file), "bytes": file.stat().st_size, "format": parsed.fmt, "languages": langs}


# ---------------------------------------------------------------- invalid datasets


def _quarantine(entry, files, content, report: ValidationReport, quarantine: Path, config, ledger, result) -> None:
    version = content[:16]
    target = quarantine / version
    if not target.exists():
        tmp = quarantine / f".tmp-{version}-{os.getpid()}"
        tmp.mkdir()
        _write_text(tmp / "report.json", report.model_dump_json(indent=2))
        _write_text(tmp / "report.txt", report.summary(max_examples=config.max_examples) + "\n")
        try:  # a second run, rendering Data Docs: only invalid data pays for it
            run_validation(files, config=config, data_docs_dir=tmp / "data_docs")
        except Exception as e:  # the JSON and text reports stand on their own
            _write_text(tmp / "data_docs_error.txt", f"Data Docs could not be built: {e.__class__.__name__}: {e}\n")
        for path in tmp.rglob("*"):
            if path.is_file():
                _fsync(path)
        _fsync(tmp)
        _rename(tmp, target)
        _fsync(quarantine)
    ledger.record(
        {"hash": content, "version": version, "status": "quarantined", "sources": [entry.name], "path": str(target)}
    )
    _move(entry, target / "input")
    result.quarantined.append(
        QuarantinedDataset(
            version=version, content_sha256=content, sources=report.files, path=str(target),
            report=str(target / "report.json"), failed_checks=[c.name for c in report.failed],
        )
    )


# ---------------------------------------------------------------- the validated store


def load_ingested(store: str | Path, version: str):
    """A validated dataset from the store as a ``QADataset`` (its manifest in ``meta``)."""
    import pandas as pd

    from xlir.data.schema import QADataset

    folder = Path(store).expanduser() / version
    manifest = _read_manifest(folder)
    if manifest is None:
        raise XlirError(f"no ingested dataset {version} in {store}")
    return QADataset(
        name=f"ingested:{manifest['name']}",
        version=version,
        questions=pd.read_parquet(folder / "questions.parquet"),
        candidates=pd.read_parquet(folder / "candidates.parquet"),
        meta=manifest,
    )


def content_hash(files: list[Path]) -> str:
    """sha256 of one file's bytes, or of the sorted sha256s of several (names do not count)."""
    if len(files) == 1:
        return sha256_file(files[0])
    digests = sorted(sha256_file(f) for f in files)
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()


class Ledger:
    """Append-only JSON lines, one per outcome, keyed by content hash (last line wins)."""

    def __init__(self, path: Path):
        self.path = path
        self.entries: dict[str, dict] = {}
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    item = json.loads(line)
                except json.JSONDecodeError:  # a line cut short by a crash
                    continue
                if isinstance(item, dict) and "hash" in item:
                    self.entries[item["hash"]] = item

    def get(self, content: str) -> dict | None:
        return self.entries.get(content)

    def record(self, item: dict) -> None:
        item = {**item, "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        line = json.dumps(item, ensure_ascii=False) + "\n"
        with open(self.path, "a+b") as f:
            f.seek(0, os.SEEK_END)
            if f.tell():
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    line = "\n" + line
            f.write(line.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        self.entries[item["hash"]] = item


# ---------------------------------------------------------------- file-system steps


def _read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _rename(src: Path, dst: Path) -> None:
    """Atomic publication of a finished folder (fails rather than replace an existing one)."""
    if dst.exists():
        raise FileExistsError(f"{dst} already exists")
    os.rename(src, dst)


def _move(entry: Path, folder: Path) -> Path:
    """Move a landing entry into ``folder`` under a free name (``name``, ``name.1``, ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / entry.name
    n = 0
    while dest.exists() or dest.is_symlink():
        n += 1
        dest = folder / f"{entry.stem}.{n}{entry.suffix}" if entry.is_file() else folder / f"{entry.name}.{n}"
    try:
        os.rename(entry, dest)
    except OSError:  # another file system: copy, then remove the copied original
        shutil.move(str(entry), str(dest))
    _fsync(folder)
    return dest


def _remove_stale_temp(folder: Path) -> None:
    """Remove our own unfinished ``.tmp-*`` output (we hold the lock, so nobody is writing it)."""
    for path in folder.glob(".tmp-*"):
        if path.is_dir():
            shutil.rmtree(path)


@contextmanager
def _lock(store: Path):
    with open(store / LOCK, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise XlirError(f"another ingest is running on {store} (lock {store / LOCK}); try again later") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _outside_landing_scan(landing: Path, folder: Path, name: str) -> None:
    """Output inside landing must sit under an ignored (``.``/``_``) name, or ingest would read it."""
    try:
        rel = folder.resolve().relative_to(landing.resolve())
    except ValueError:
        return
    if not rel.parts or not rel.parts[0].startswith((".", "_")):
        raise XlirError(
            f"the {name} folder {folder} is inside the landing folder {landing}; put it elsewhere "
            "or under a name starting with '_' (e.g. _processed)"
        )
