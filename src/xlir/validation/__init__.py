"""The data contract: incoming multilingual QA data is proven fit before any training step uses it.

- ``validate_files(paths, fmt="auto", lang=None, config=None) -> ValidationReport``: parse files
  (LAReQA JSON, JSON Lines, Parquet) into the canonical question table and run the expectation
  suite (``suite.yaml``, Great Expectations 1.x) on them as one dataset.
- ``ingest(landing, store, quarantine, config=None) -> IngestResult``: valid datasets from a
  landing folder become versioned Parquet in the store, invalid ones go to quarantine with a
  report (see ``xlir.validation.ingestion`` for the layout and the crash-safety rules).
- ``ValidationConfig``: thresholds, languages, evaluation datasets; ``ValidationConfig.load(path)``.
- ``load_ingested(store, version) -> QADataset``: read a validated dataset back.

CLI: ``xlir validate`` and ``xlir ingest`` (``xlir.validation.cli``).
"""

from xlir.validation.config import Thresholds, ValidationConfig
from xlir.validation.ingestion import IngestResult, ingest, load_ingested
from xlir.validation.report import CheckResult, ValidationReport
from xlir.validation.validate import validate_files

__all__ = [
    "CheckResult",
    "IngestResult",
    "Thresholds",
    "ValidationConfig",
    "ValidationReport",
    "ingest",
    "load_ingested",
    "validate_files",
]
