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


def options_error(e, what: str) -> str:
    """``invalid <what> options: --option: what is wrong (got value); ...`` for a pydantic
    ``ValidationError`` of a config built from CLI options."""
    parts = []
    for err in e.errors():
        loc = [str(p) for p in err["loc"] if not isinstance(p, int)]
        msg = err["msg"].removeprefix("Value error, ")
        if not loc:  # a rule across several options
            parts.append(msg)
            continue
        name = "--" + {"output_dir": "output"}.get(loc[0], loc[0]).replace("_", "-")
        parts.append(f"{name}: {msg} (got {err['input']!r})")
    return f"invalid {what} options: " + "; ".join(parts)
