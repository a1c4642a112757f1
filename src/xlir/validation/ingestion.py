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

When an entry is taken (a file still being written under its final name must not be)
    An entry is taken once it has been quiet: no file in it (hidden ones included: an upload
    tool's temporary file means an upload is under way) modified for ``quiet_seconds`` (default
    30; ``XLIR_INGEST_QUIET_SECONDS``, ``xlir ingest --quiet-seconds``). Until then it waits for
    a later run and is reported as waiting. A ready marker takes it at once: ``<name>.done``
    beside a file or folder, or ``_SUCCESS`` inside a folder, written after the data (a file
    modified after its marker waits for the quiet period again). The marker travels with the
    entry.

What is never taken (reported, and left where it is)
    - symbolic links, at the top or inside a folder: never followed, never archived (the record
      of a version must not change or vanish with the link's target; a link to ``/`` must not
      walk the disk); copy the data in as a real file or folder;
    - FIFOs, sockets and devices (never opened);
    - names that are not valid UTF-8 (an error naming the file, with the bytes shown as ``\\xe9``:
      rename it).

One entry never blocks another
    Each entry succeeds or fails on its own: an error while processing it (unreadable, a
    version-prefix collision, a bug) is recorded in ``errors`` with its reason, the entry stays
    in landing for the next run, and the other entries go on. Every version stored is announced
    (``ingested``, the asset event): one stored and recorded but not announced by the run that
    stored it (a crash, a failed archive move) is announced by the next run
    (``STORE/_announced.jsonl`` lists the versions announced).

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
      ``data_docs/index.html``; the data's values shown as text, never as markup:
      ``xlir.validation.data_docs``); the landing entry moves into ``QUARANTINE/<version>/input/``.
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
    runs at a time per store (an exclusive lock on ``STORE/.ingest.lock``). The ledger is read
    as bytes, line by line: a line cut short by a crash (even inside a multi-byte character) is
    skipped with a warning, and every complete line counts.

The store must be a POSIX filesystem (atomic rename, fsync); landing and quarantine may be a
mount where a move is a copy followed by a delete of the copied original.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import logging
import math
import os
import shutil
import stat
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
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
ANNOUNCED = "_announced.jsonl"
LOCK = ".ingest.lock"
ARCHIVE = "_processed"
IGNORED_SUFFIXES = (".part", ".tmp", ".crdownload")
MANIFEST_FORMAT = "xlir.validated-dataset/1"
QUIET_SECONDS_ENV = "XLIR_INGEST_QUIET_SECONDS"
DEFAULT_QUIET_SECONDS = 30.0
DONE_SUFFIX = ".done"
SUCCESS_MARKER = "_SUCCESS"

log = logging.getLogger(__name__)


def quiet_seconds_setting(value: float | str | None = None) -> float:
    """The quiet period: ``value`` if given, else ``$XLIR_INGEST_QUIET_SECONDS``, else 30 s."""
    source = "quiet_seconds"
    if value is None:
        value, source = os.environ.get(QUIET_SECONDS_ENV, "").strip() or DEFAULT_QUIET_SECONDS, QUIET_SECONDS_ENV
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise XlirError(f"{source} must be a number of seconds, got {value!r}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise XlirError(f"{source} must be a number of seconds >= 0, got {value!r}")
    return seconds


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
    ingested: list[IngestedDataset] = Field(
        default_factory=list, description="versions to announce: stored now, or stored earlier and not announced yet"
    )
    quarantined: list[QuarantinedDataset] = Field(default_factory=list)
    skipped: list[SkippedDuplicate] = Field(default_factory=list)
    ignored: list[str] = Field(default_factory=list, description="landing entries left alone, and why")
    waiting: list[str] = Field(default_factory=list, description="entries not quiet yet, taken by a later run")
    errors: list[dict] = Field(
        default_factory=list, description="entries that failed on their own ({source, error}); left in landing"
    )
    warnings: list[str] = Field(default_factory=list, description="problems ingest worked around (a broken ledger line)")

    def summary(self) -> str:
        lines = [
            f"ingested {len(self.ingested)}, quarantined {len(self.quarantined)}, "
            f"duplicates {len(self.skipped)}, errors {len(self.errors)}, waiting {len(self.waiting)}, "
            f"ignored {len(self.ignored)}"
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
            lines.append(f"  error       {e['source']}: {e['error']}")
        for note in self.waiting:
            lines.append(f"  waiting     {note}")
        for note in self.ignored:
            lines.append(f"  ignored     {note}")
        for note in self.warnings:
            lines.append(f"  warning     {note}")
        return "\n".join(lines)


def ingest(
    landing: str | Path,
    store: str | Path | None = None,
    quarantine: str | Path | None = None,
    config: ValidationConfig | None = None,
    archive: str | Path | None = None,
    retry_quarantined: bool = False,
    quiet_seconds: float | None = None,
) -> IngestResult:
    """Process every new dataset in ``landing`` (see the module docstring for the layout).

    ``quiet_seconds``: how long an entry's files must be unchanged before it is taken (default
    ``$XLIR_INGEST_QUIET_SECONDS``, else 30); a ready marker takes it at once.
    """
    landing = Path(landing).expanduser()
    if not landing.is_dir():
        raise XlirError(f"landing folder {landing} does not exist")
    quiet = quiet_seconds_setting(quiet_seconds)
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
        announced = Announced(store / ANNOUNCED, ledger)
        for warning in ledger.warnings + announced.warnings:
            log.warning(warning)
            result.warnings.append(warning)
        run = _Run(store, quarantine, archive, config, ledger, announced, result, retry_quarantined)
        entries = sorted(landing.iterdir())
        present = {e.name for e in entries}
        for entry in entries:
            name = entry.name
            if name.startswith((".", "_")) or name.endswith(IGNORED_SUFFIXES):
                continue
            if name.endswith(DONE_SUFFIX) and not entry.is_dir():
                marked = name[: -len(DONE_SUFFIX)]
                if marked not in present:
                    result.ignored.append(f"{display_name(name)}: a ready marker for {display_name(marked)}, "
                                          "which is not in landing")
                continue
            try:
                _take(entry, quiet, run)
            except Exception as e:  # one entry never stops the others; a crash (BaseException) still does
                log.warning("ingest of %s failed", display_name(name), exc_info=True)
                result.errors.append({"source": display_name(name), "error": f"{_reason(e)}; left in landing"})
        try:
            _announce_unannounced(run)
            announced.record([d.version for d in result.ingested])
        except OSError as e:
            result.errors.append({"source": str(store / ANNOUNCED),
                                  "error": f"{_reason(e)}; these versions are announced again next run"})
    return result


@dataclass
class _Run:
    store: Path
    quarantine: Path
    archive: Path
    config: ValidationConfig
    ledger: Ledger
    announced: Announced
    result: IngestResult
    retry_quarantined: bool

    def announcing(self, version: str) -> bool:
        return any(d.version == version for d in self.result.ingested)


def display_name(name: str) -> str:
    """A file name fit to print and store: bytes that are not UTF-8 shown as ``\\xe9``."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _reason(e: BaseException) -> str:
    return f"{e}" if isinstance(e, XlirError) else f"{e.__class__.__name__}: {e}"


@dataclass
class _Scan:
    """What a landing entry holds, seen without following any link."""

    newest_ns: int = 0
    links: list[str] = field(default_factory=list)
    specials: list[str] = field(default_factory=list)
    bad_names: list[str] = field(default_factory=list)
    success_marker_ns: int | None = None


def _scan(entry: Path) -> _Scan:
    scan = _Scan()
    info = entry.lstat()
    if not stat.S_ISDIR(info.st_mode):
        scan.newest_ns = info.st_mtime_ns
        return scan
    stack = [entry]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as items:
            for item in items:
                rel = display_name(os.path.relpath(item.path, entry.parent))
                if not _is_utf8(item.name):
                    scan.bad_names.append(rel)
                if item.is_symlink():
                    scan.links.append(rel)
                elif item.is_dir(follow_symlinks=False):
                    stack.append(Path(item.path))
                elif item.is_file(follow_symlinks=False):
                    mtime = item.stat(follow_symlinks=False).st_mtime_ns
                    if item.name == SUCCESS_MARKER and folder == entry:
                        scan.success_marker_ns = mtime
                    else:
                        scan.newest_ns = max(scan.newest_ns, mtime)
                else:
                    scan.specials.append(rel)
    return scan


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _listing(paths: list[str], limit: int = 3) -> str:
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def _take(entry: Path, quiet: float, run: _Run) -> None:
    """Decide what one landing entry is (ignored, waiting, an error) or process it."""
    result, name = run.result, display_name(entry.name)
    if entry.is_symlink():
        result.ignored.append(f"{name}: a symbolic link; links are never followed nor ingested "
                              "(copy the data into landing as a real file or folder)")
        return
    if not _is_utf8(entry.name):
        raise XlirError(f"the name is not valid UTF-8 ({name}); rename it and it is taken on the next run")
    info = entry.lstat()
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
        result.ignored.append(f"{name}: not a regular file or folder (a FIFO, socket or device)")
        return
    scan = _scan(entry)
    if scan.links:
        result.ignored.append(f"{name}: holds symbolic links ({_listing(scan.links)}); links are never followed "
                              "nor ingested: replace them with real files")
        return
    if scan.specials:
        result.ignored.append(f"{name}: holds files that are not regular files ({_listing(scan.specials)})")
        return
    if scan.bad_names:
        raise XlirError(f"names that are not valid UTF-8 inside it ({_listing(scan.bad_names)}); rename them "
                        "and it is taken on the next run")
    files = [entry] if entry.is_file() else data_files(entry)
    if not files:
        result.ignored.append(f"{name}: no data files (.json, .jsonl, .ndjson, .parquet)")
        return
    waiting = _not_ready(entry, scan, quiet)
    if waiting:
        result.waiting.append(f"{name}: {waiting}")
        return
    _process(entry, files, run)


def _not_ready(entry: Path, scan: _Scan, quiet: float) -> str | None:
    """None when the entry may be taken now, else why it waits."""
    marker_ns = scan.success_marker_ns
    done = entry.with_name(entry.name + DONE_SUFFIX)
    try:
        info = done.lstat()
        if stat.S_ISREG(info.st_mode):
            marker_ns = max(marker_ns or 0, info.st_mtime_ns)
    except FileNotFoundError:
        pass
    if marker_ns is not None and scan.newest_ns <= marker_ns:
        return None
    age = time.time() - scan.newest_ns / 1e9
    if age >= quiet:
        return None
    after_marker = " (modified after its ready marker)" if marker_ns is not None else ""
    if age < 0:
        return (f"modified {-age:.0f} s in the future{after_marker} (clock skew between the writer and this "
                f"machine?); taken once {quiet:g} s have passed since then")
    return (f"modified {age:.0f} s ago{after_marker}; taken once unchanged for {quiet:g} s, or at once with a ready "
            f"marker ({display_name(entry.name)}{DONE_SUFFIX} beside it, or {SUCCESS_MARKER} inside a folder)")


def _process(entry: Path, files: list[Path], run: _Run) -> None:
    ledger, result, archive = run.ledger, run.result, run.archive
    content = content_hash(files)
    version = content[:16]
    known = ledger.get(content)
    if known and not (run.retry_quarantined and known["status"] == "quarantined"):
        if known["status"] == "ingested":
            manifest = read_manifest(run.store / version)
            if not run.announced.has(version) and not run.announcing(version) and manifest is not None:
                # stored and recorded by a run that never announced it (a crash, a failed move)
                _finish_ingest(entry, manifest, run.store / version, run, recovered=True, record=False)
                return
        where = archive / version if known["status"] == "ingested" else run.quarantine / version / "input"
        moved = _move_entry(entry, where)
        result.skipped.append(SkippedDuplicate(source=entry.name, version=version, status=known["status"], moved_to=str(moved)))
        return
    target = run.store / version
    manifest = read_manifest(target)
    if manifest is not None:
        if manifest.get("content_sha256") != content:
            raise XlirError(f"{target} holds another dataset (content hash differs); version prefix collision")
        _finish_ingest(entry, manifest, target, run, recovered=True)
        return
    validation = run_validation(files, config=run.config)
    report = validation.report
    if content_hash(files) != content:
        raise OSError("the files changed while being validated (an upload still in progress?)")
    if report.passed:
        manifest = _publish(entry, files, content, validation, run.store, run.config)
        _finish_ingest(entry, manifest, target, run, recovered=False)
    else:
        _quarantine(entry, files, content, report, run.quarantine, run.config, ledger, result)


def _announce_unannounced(run: _Run) -> None:
    """Versions the ledger holds as ingested that no run has announced and whose entry is gone."""
    for item in list(run.ledger.entries.values()):
        version = item.get("version")
        if item.get("status") != "ingested" or not version or run.announced.has(version) or run.announcing(version):
            continue
        manifest = read_manifest(run.store / version)
        if manifest is None or manifest.get("content_sha256") != item.get("hash"):
            run.result.warnings.append(f"version {version} is in the ledger as ingested, but {run.store / version} "
                                       "holds no matching dataset; not announced")
            continue
        run.result.ingested.append(_ingested(manifest, run.store / version, recovered=True))


# ---------------------------------------------------------------- valid datasets


def _publish(entry: Path, files: list[Path], content: str, validation, store: Path, config: ValidationConfig) -> dict:
    """Write the dataset to a temporary folder, fsync it, and rename it into place atomically."""
    import pandas as pd

    version = content[:16]
    tmp = store / f".tmp-{version}-{os.getpid()}"
    tmp.mkdir()
    try:
        return _write_version(entry, files, content, validation, store, config, tmp)
    except Exception:  # an error, not a crash: leave no half-written folder behind for this run
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_version(entry, files, content, validation, store: Path, config: ValidationConfig, tmp: Path) -> dict:
    import pandas as pd

    version = content[:16]
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


def _finish_ingest(entry, manifest, target, run: _Run, recovered: bool, record: bool = True) -> None:
    """Record a stored version, announce it, and archive its input (a failed move still announces)."""
    version = manifest["version"]
    if record:
        run.ledger.record(
            {"hash": manifest["content_sha256"], "version": version, "status": "ingested",
             "sources": [entry.name], "path": str(target)}
        )
    run.result.ingested.append(_ingested(manifest, target, recovered))
    try:
        _move_entry(entry, run.archive / version)
    except OSError as e:
        raise OSError(f"stored as version {version} (announced), but moving it to the archive failed "
                      f"({e.__class__.__name__}: {e}); it is archived on the next run") from e


def _ingested(manifest: dict, target: Path, recovered: bool) -> IngestedDataset:
    return IngestedDataset(
        version=manifest["version"], content_sha256=manifest["content_sha256"],
        sources=[s["name"] for s in manifest["sources"]], path=str(target),
        rows=manifest["rows"]["questions"], rows_per_language=manifest["rows"]["questions_per_language"],
        recovered=recovered,
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
    _move_entry(entry, target / "input")
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
    manifest = read_manifest(folder)
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


def read_json_lines(path: Path) -> tuple[list[dict], list[str]]:
    """The JSON objects of a JSON Lines file read as bytes, line by line, and a warning for each
    line that is not one (a line cut short by a crash, even inside a multi-byte character)."""
    items: list[dict] = []
    warnings: list[str] = []
    if not path.exists():
        return items, warnings
    for n, raw in enumerate(path.read_bytes().split(b"\n"), 1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            warnings.append(f"{path} line {n} ({len(raw)} bytes) is not a complete JSON line ({e.__class__.__name__}; "
                            "a write cut short?); skipped, every other line counts")
            continue
        if isinstance(item, dict):
            items.append(item)
    return items, warnings


def _append_json_line(path: Path, item: dict) -> None:
    line = json.dumps(item, ensure_ascii=False) + "\n"
    with open(path, "a+b") as f:
        f.seek(0, os.SEEK_END)
        if f.tell():
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":  # after a line cut short: start a line of our own
                line = "\n" + line
        f.write(line.encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class Ledger:
    """Append-only JSON lines, one per outcome, keyed by content hash (last line wins)."""

    def __init__(self, path: Path):
        self.path = path
        self.entries: dict[str, dict] = {}
        items, self.warnings = read_json_lines(path)
        for item in items:
            if "hash" in item:
                self.entries[item["hash"]] = item

    def get(self, content: str) -> dict | None:
        return self.entries.get(content)

    def record(self, item: dict) -> None:
        item = {**item, "at": _now()}
        _append_json_line(self.path, item)
        self.entries[item["hash"]] = item


class Announced:
    """The versions runs have announced (``ingested``: the asset event), one JSON line each.

    A store from before this file existed counts every version its ledger holds as announced
    (the run that stored each one announced it), so none is announced twice.
    """

    def __init__(self, path: Path, ledger: Ledger):
        self.path = path
        items, self.warnings = read_json_lines(path)
        self.versions = {str(item["version"]) for item in items if "version" in item}
        if not path.exists():
            legacy = sorted(
                {e["version"] for e in ledger.entries.values() if e.get("status") == "ingested" and e.get("version")}
            )
            with open(path, "ab") as f:
                for version in legacy:
                    f.write((json.dumps({"version": version, "at": _now(), "legacy": True}) + "\n").encode())
                f.flush()
                os.fsync(f.fileno())
            self.versions.update(legacy)

    def has(self, version: str) -> bool:
        return version in self.versions

    def record(self, versions: list[str]) -> None:
        for version in versions:
            if version not in self.versions:
                _append_json_line(self.path, {"version": version, "at": _now()})
                self.versions.add(version)


# ---------------------------------------------------------------- file-system steps


def read_manifest(folder: str | Path) -> dict | None:
    """The ``manifest.json`` of a stored version's ``folder`` (sources and hashes, rows, validation
    result), or None when it is missing or unreadable: the one reader of what the ingest wrote."""
    try:
        folder = Path(folder)
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


def _move_entry(entry: Path, folder: Path) -> Path:
    """Move a landing entry into ``folder``, and its ``<name>.done`` ready marker after it."""
    dest = _move(entry, folder)
    marker = entry.with_name(entry.name + DONE_SUFFIX)
    if marker.is_file() and not marker.is_symlink():
        _move(marker, folder)
    return dest


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
