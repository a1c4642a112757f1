"""A small MLQA-R training file for pipeline tests: some parallel ids in three languages, as JSONL."""

from __future__ import annotations

import json
from pathlib import Path


def write_mlqa_slice(path: Path, ids: slice = slice(0, 30), langs=("en", "de", "es")) -> str:
    from xlir.data import load_dataset

    q = load_dataset("mlqa-r").questions
    q = q[q["lang"].isin(list(langs))]
    q = q[q["parallel_id"].isin(sorted(q["parallel_id"].unique())[ids])]
    with Path(path).open("w") as f:
        for row in q[["parallel_id", "lang", "question", "answer_sentence", "paragraph", "negatives"]].to_dict("records"):
            row["negatives"] = list(row["negatives"]) if row["negatives"] is not None else []
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return str(path)
