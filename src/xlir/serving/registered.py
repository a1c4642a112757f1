"""A registered model URI (``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``) resolved to one version.

The alias is read once, here, when a consumer loads the model (``Registry.alias``: fresh from the
server, never from a search result); what it loads is that version's folder, downloaded once per
version under ``<xlir cache>/registry``. A new champion reaches a consumer when it loads again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from xlir.errors import XlirError

_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")


def is_registry_uri(spec: str) -> bool:
    return str(spec).startswith("models:/")


@dataclass(frozen=True)
class RegisteredModel:
    uri: str  # as asked
    name: str
    version: int
    alias: str | None
    folder: Path  # the sentence-transformers folder

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}" + (f" ({self.alias})" if self.alias else "")

    @property
    def mlflow_model_dir(self) -> Path:
        """The logged model's folder (``MLmodel`` beside the sentence-transformers folder)."""
        return self.folder.parent

    def signature(self):
        from mlflow.models import Model

        return Model.load(str(self.mlflow_model_dir / "MLmodel")).signature


def resolve(uri: str, tracking_uri: str | None = None, download_dir: Path | None = None) -> RegisteredModel:
    """The version ``uri`` names now and its local folder. Errors: a malformed URI, no tracking server,
    no such registered model, alias or version (each one line that says what to do)."""
    from xlir.registry import RegistryError, open_registry
    from xlir.registry.tracking import resolve_tracking_uri

    m = _URI.match(str(uri).strip())
    if not m:
        raise XlirError(f"not a registered model URI: {uri!r}; expected models:/NAME@ALIAS (e.g. "
                        "models:/xlir-encoder@champion) or models:/NAME/VERSION")
    name, alias = m["name"], m["alias"]
    reg = open_registry(tracking_uri, name, download_dir=download_dir)
    if alias:
        v = reg.alias(alias)
        if v is None:
            where = resolve_tracking_uri(tracking_uri)
            if not reg.exists():
                raise RegistryError(f"no registered model {name!r} on {where}; run the pipeline (make run) or "
                                    "check --tracking-uri / MLFLOW_TRACKING_URI")
            raise RegistryError(f"registered model {name!r} has no alias {alias!r} (no version was promoted to it); "
                                "see `xlir registry show`")
    else:
        v = reg.version(int(m["version"]))
    return RegisteredModel(str(uri), name, v.version, alias, reg.download(v.version))


def model_folder(spec: str, tracking_uri: str | None = None) -> tuple[Path, str, RegisteredModel | None]:
    """A model spec's local folder and a label: a ``models:/`` URI through the registry, anything else
    (``bundled:...``, ``tiny``, a folder) as ``xlir.models`` resolves it."""
    if is_registry_uri(spec):
        rm = resolve(spec, tracking_uri)
        return rm.folder, rm.label, rm
    from xlir.models import prepare_model

    return prepare_model(spec), str(spec), None


__all__ = ["RegisteredModel", "is_registry_uri", "model_folder", "resolve"]
