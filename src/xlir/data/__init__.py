"""Data layer: one canonical multilingual QA table, named datasets, users' own files."""

from xlir.data.registry import dataset_names, load_dataset, source
from xlir.data.schema import CANDIDATE_COLUMNS, QUESTION_COLUMNS, QADataset

__all__ = [
    "CANDIDATE_COLUMNS",
    "QUESTION_COLUMNS",
    "QADataset",
    "dataset_names",
    "load_dataset",
    "source",
]
