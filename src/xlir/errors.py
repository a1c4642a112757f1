"""Errors meant for users: each says what was wrong, where, and what to do.

The CLI prints these without a traceback; anything else is a bug and keeps its traceback.
"""


class XlirError(Exception):
    """Base class for every error a user can cause and fix."""


class DataFormatError(XlirError):
    """A data file could not be read into the canonical table."""

    def __init__(self, path, message: str):
        self.path = str(path)
        super().__init__(f"{self.path}: {message}")


class DatasetNotFoundError(XlirError):
    """A dataset name or its files could not be resolved."""


class ChecksumError(XlirError):
    """A data file's sha256 differs from the pinned value."""


class ModelSpecError(XlirError):
    """A base-model name could not be resolved into an encoder."""
