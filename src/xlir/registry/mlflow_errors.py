"""MLflow's error codes, read in one place (the bottom layer of ``xlir.registry``).

The client raises ``MlflowException`` (or a REST error) whose ``error_code`` says what happened;
the registry branches on three kinds of it. Older and newer servers spell some codes differently,
hence sets.
"""

from __future__ import annotations

MISSING = frozenset({"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"})
EXISTS = frozenset({"RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"})
INVALID = frozenset({"INVALID_PARAMETER_VALUE"})
DENIED = frozenset({"PERMISSION_DENIED"})
"""MLflow's auth app answers this (403), not a missing-resource code, to a non-admin asking about a model
that does not exist."""


def error_code(e: BaseException) -> str:
    """The MLflow error code of ``e`` (``""`` when it has none)."""
    return str(getattr(e, "error_code", ""))


def is_error(e: BaseException, *kinds: frozenset[str]) -> bool:
    """True when ``e``'s code is in one of ``kinds`` (``MISSING``, ``EXISTS``, ``INVALID``, ``DENIED``)."""
    code = error_code(e)
    return any(code in kind for kind in kinds)


__all__ = ["DENIED", "EXISTS", "INVALID", "MISSING", "error_code", "is_error"]
