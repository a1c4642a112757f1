"""From a canonical dataset to the arrays the ranking needs: a language-grouped pool, the
(optionally subsampled) queries and each query's relevant pool indices."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from xlir.data.schema import QADataset
from xlir.errors import XlirError


@dataclass(frozen=True)
class RetrievalTask:
    languages: list[str]
    queries: pd.DataFrame  # parallel_id, lang, question, query_id
    candidates: pd.DataFrame  # grouped by language, in dataset order within a language
    lang_starts: np.ndarray
    relevant: list[np.ndarray]

    def candidate_texts(self, mode: str) -> list[str]:
        if mode == "sentence+paragraph":
            return (self.candidates["sentence"] + "\n" + self.candidates["paragraph"]).tolist()
        return self.candidates["sentence"].tolist()


def select_questions(questions: pd.DataFrame, per_lang: int | None, seed: int) -> pd.DataFrame:
    """A seeded subset of at most ``per_lang`` questions per language.

    Parallel ids are drawn in one seeded order and each language takes the first ones it has,
    so a parallel dataset (XQuAD-R) gets the same question ids in every language.
    """
    if per_lang is None:
        return questions
    ids = np.sort(questions["parallel_id"].unique())
    order = {pid: i for i, pid in enumerate(np.random.default_rng(seed).permutation(ids))}
    ranked = questions.assign(_order=questions["parallel_id"].map(order)).sort_values(["lang", "_order"])
    return ranked.groupby("lang", sort=False).head(per_lang).drop(columns="_order").sort_index()


def build_task(ds: QADataset, per_lang: int | None = None, seed: int = 0) -> RetrievalTask:
    languages = ds.languages
    cands = ds.candidates.assign(_l=ds.candidates["lang"].map(languages.index))
    cands = cands.sort_values("_l", kind="stable").drop(columns="_l").reset_index(drop=True)
    lang_starts = np.searchsorted(cands["lang"].map(languages.index).to_numpy(), np.arange(len(languages)))
    empty = [lang for lang in languages if not (cands["lang"] == lang).any()]
    if empty:
        raise XlirError(f"{ds.name}: languages {empty} have questions but no candidates to retrieve")
    queries = select_questions(ds.questions, per_lang, seed).reset_index(drop=True)
    queries = queries.assign(query_id=queries["lang"] + ":" + queries["parallel_id"])
    answers: dict[str, list[int]] = {}
    for i, ids in enumerate(cands["parallel_ids"]):
        for pid in ids:
            answers.setdefault(pid, []).append(i)
    relevant = [np.asarray(answers.get(pid, []), dtype=np.int64) for pid in queries["parallel_id"]]
    return RetrievalTask(languages, queries, cands, lang_starts, relevant)
