"""Thresholds, languages and evaluation datasets of the data contract, with their defaults.

One typed object, shared by ``xlir validate``, ``xlir ingest``, the Airflow tasks and the tests.
A file (YAML or JSON) overrides any subset of it; ``default_config.yaml`` beside this module
spells out every default and is the template to copy::

    languages: [en, de, es]
    eval_datasets: [mlqa-r]          # train on XQuAD-R, evaluate on MLQA-R
    thresholds:
      min_parallel_coverage: 0.8
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from xlir.errors import XlirError
from xlir.validation.languages import ISO_639_1, KNOWN_SCRIPTS, SCRIPTS

DEFAULT_EVAL_DATASETS = ("xquad-r", "dream")
"""Evaluation datasets no training data may overlap (registry names, ``name:split`` or paths)."""


class Thresholds(BaseModel):
    """Every number the expectation suite compares against (``$name`` in ``suite.yaml``)."""

    model_config = ConfigDict(extra="forbid")

    min_rows: int = Field(1, ge=0, description="question rows a file must hold")
    min_languages: int = Field(2, ge=1, description="distinct languages the dataset must hold")
    min_parallel_coverage: float = Field(
        0.5, ge=0, le=1, description="share of parallel ids present in at least two languages"
    )
    min_script_share: float = Field(
        0.5, ge=0, le=1, description="share of a row's letters (question + answer sentence) in its language's script"
    )
    min_script_rows: float = Field(
        0.95, ge=0, le=1, description="share of a language's rows that must reach min_script_share"
    )
    min_question_chars: int = Field(3, ge=1, description="shortest question, in characters")
    max_question_chars: int = Field(500, ge=1, description="longest question, in characters")
    min_answer_chars: int = Field(2, ge=1, description="shortest answer sentence, in characters")
    max_answer_chars: int = Field(2000, ge=1, description="longest answer sentence, in characters")
    min_paragraph_chars: int = Field(2, ge=1, description="shortest paragraph, in characters")
    max_paragraph_chars: int = Field(50000, ge=1, description="longest paragraph, in characters")
    min_answer_in_paragraph: float = Field(
        1.0, ge=0, le=1, description="share of rows whose answer sentence occurs in their paragraph"
    )
    max_duplicate_question_rate: float = Field(
        0.02, ge=0, le=1, description="share of rows repeating an earlier (language, normalised question)"
    )
    leakage_min_letters: int = Field(
        4, ge=1, description="strings with fewer letters (after normalisation) never count as leakage"
    )

    @model_validator(mode="after")
    def _bounds_ordered(self):
        for name in ("question", "answer", "paragraph"):
            low, high = getattr(self, f"min_{name}_chars"), getattr(self, f"max_{name}_chars")
            if low > high:
                raise ValueError(f"min_{name}_chars ({low}) exceeds max_{name}_chars ({high})")
        return self


class ValidationConfig(BaseModel):
    """What incoming data must satisfy before training may use it."""

    model_config = ConfigDict(extra="forbid")

    languages: list[str] = Field(
        default_factory=lambda: sorted(SCRIPTS),
        description="ISO 639-1 codes a dataset may hold (default: every code with a known script)",
    )
    scripts: dict[str, list[str]] = Field(
        default_factory=dict, description="expected scripts per language, added to or replacing the built-in table"
    )
    eval_datasets: list[str] = Field(
        default_factory=lambda: list(DEFAULT_EVAL_DATASETS),
        description="evaluation data no question or answer may come from: registry names "
        "(xquad-r, mlqa-r, dream, dream:dev) or paths of files/folders in an accepted format",
    )
    thresholds: Thresholds = Field(default_factory=Thresholds)
    max_examples: int = Field(5, ge=0, le=100, description="example rows shown per failed check")

    @field_validator("languages", mode="before")
    @classmethod
    def _no_yaml_booleans(cls, value):
        if isinstance(value, list) and any(isinstance(v, bool) for v in value):
            raise ValueError("a language code was read as true/false; quote codes such as 'no' in YAML")
        return value

    @field_validator("languages")
    @classmethod
    def _iso_codes(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - ISO_639_1)
        if unknown:
            raise ValueError(f"not ISO 639-1 codes: {unknown}")
        if not value:
            raise ValueError("at least one language is needed")
        return sorted(set(value))

    @field_validator("scripts")
    @classmethod
    def _known_scripts(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for lang, names in value.items():
            if lang not in ISO_639_1:
                raise ValueError(f"scripts: '{lang}' is not an ISO 639-1 code")
            unknown = sorted(set(names) - KNOWN_SCRIPTS)
            if unknown or not names:
                raise ValueError(
                    f"scripts.{lang}: unknown script names {unknown or names}; known: {sorted(KNOWN_SCRIPTS)}"
                )
        return value

    @model_validator(mode="after")
    def _every_language_has_a_script(self):
        missing = [lang for lang in self.languages if lang not in self.scripts and lang not in SCRIPTS]
        if missing:
            raise ValueError(f"languages {missing} have no known script; give them under 'scripts'")
        return self

    def expected_scripts(self, lang: str) -> frozenset[str] | None:
        """The scripts a language's text should be in; None for a language with none known."""
        names = self.scripts.get(lang) or SCRIPTS.get(lang)
        return frozenset(names) if names else None

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides) -> ValidationConfig:
        """Defaults, updated from a YAML/JSON file, then from keyword overrides.

        Raises ``XlirError`` naming the file and the offending field for an unreadable or
        invalid file.
        """
        data: dict = {}
        if path is not None:
            data = _read_mapping(Path(path))
        data.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            where = f"{path}: " if path else ""
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in e.errors()
            )
            raise XlirError(f"{where}invalid validation config: {problems}") from None


def _read_mapping(path: Path) -> dict:
    if not path.is_file():
        raise XlirError(f"config file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except (json.JSONDecodeError, ValueError) as e:
        raise XlirError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'} ({e})") from None
    except Exception as e:  # yaml.YAMLError, imported lazily
        raise XlirError(f"{path}: not valid YAML ({e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise XlirError(f"{path}: a validation config must be a mapping, got {type(data).__name__}")
    return data
