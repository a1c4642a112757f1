"""The canonical multilingual QA representation every stage of xlir reads.

Two tables:

- ``questions``: one row per (question, language). ``parallel_id`` ties the translations of one
  question together; ``answer_sentence`` is the sentence holding its answer, ``paragraph`` the
  text around it and ``negatives`` the paragraph's other sentences (a hard-negative pool).
- ``candidates``: the retrieval pool, one row per sentence of every paragraph (LAReQA) or per
  dialogue (DREAM), with ``parallel_ids``, the questions that sentence answers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import pandas as pd

from xlir.errors import DataFormatError

QUESTION_COLUMNS: dict[str, str] = {
    "parallel_id": "str",
    "lang": "str",
    "question": "str",
    "answer_sentence": "str",
    "paragraph": "str",
    "negatives": "list[str]",
    "source": "str",
    "answer_candidate_id": "str",
}
"""Columns of the question table. Users' JSONL/Parquet files need the first five; ``negatives``,
``source`` and ``answer_candidate_id`` are derived when missing."""

REQUIRED_USER_COLUMNS = ("parallel_id", "lang", "question", "answer_sentence", "paragraph")

CANDIDATE_COLUMNS: dict[str, str] = {
    "candidate_id": "str",
    "lang": "str",
    "paragraph_id": "str",
    "sentence_index": "int",
    "sentence": "str",
    "paragraph": "str",
    "parallel_ids": "list[str]",
}


def candidate_id(lang: str, paragraph_id: str, sentence_index: int) -> str:
    """A candidate's id, ``lang:paragraph:sentence``, as docs/METHOD.md section 2 defines it."""
    return f"{lang}:{paragraph_id}:{sentence_index}"


@dataclass(frozen=True)
class QADataset:
    """A named, versioned pair of canonical tables.

    ``version`` is a content hash: the same files always give the same version, which keys
    caches (embeddings, validated data) and is logged with every run.
    """

    name: str
    version: str
    questions: pd.DataFrame
    candidates: pd.DataFrame
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        for table, columns in (("questions", QUESTION_COLUMNS), ("candidates", CANDIDATE_COLUMNS)):
            missing = [c for c in columns if c not in getattr(self, table).columns]
            if missing:
                raise DataFormatError(self.name, f"{table} table lacks columns {missing}")

    @property
    def languages(self) -> list[str]:
        """Languages with questions or candidates, sorted."""
        return sorted(set(self.questions["lang"]) | set(self.candidates["lang"]))

    def questions_in(self, lang: str) -> pd.DataFrame:
        return self.questions[self.questions["lang"] == lang]

    def candidates_in(self, lang: str) -> pd.DataFrame:
        return self.candidates[self.candidates["lang"] == lang]

    def describe(self) -> pd.DataFrame:
        """Per-language counts: questions, candidates, parallel ids shared with another language."""
        coverage = self.questions.groupby("parallel_id")["lang"].nunique()
        shared = set(coverage[coverage >= 2].index)
        rows = []
        for lang in self.languages:
            q = self.questions_in(lang)
            rows.append(
                {
                    "lang": lang,
                    "questions": len(q),
                    "candidates": len(self.candidates_in(lang)),
                    "parallel": int(q["parallel_id"].isin(shared).sum()),
                }
            )
        return pd.DataFrame(rows, columns=["lang", "questions", "candidates", "parallel"])


def content_version(parts: list[tuple[str, str]]) -> str:
    """A short, stable version from (name, sha256) pairs, order-independent."""
    digest = hashlib.sha256("\n".join(f"{n}:{h}" for n, h in sorted(parts)).encode())
    return digest.hexdigest()[:16]
