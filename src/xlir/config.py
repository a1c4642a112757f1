"""Typed configuration shared by the CLI, the Airflow params and the tests; defaults live here."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_BASE_MODEL = "bundled:multilingual-e5-small"


class EvalConfig(BaseModel):
    """One zero-shot evaluation of one model on one dataset (LAReQA protocol)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(DEFAULT_BASE_MODEL, description="base-model spec, a trained model folder, or 'bm25'")
    dataset: str = Field("xquad-r", description="xquad-r, mlqa-r or dream")
    split: str | None = Field(None, description="dataset split where there are several (dream: test)")
    max_questions_per_lang: int | None = Field(
        None, ge=1, description="evaluate on a seeded subset of questions per language; the pool stays complete"
    )
    seed: int = Field(0, description="seed of the question subset")
    candidate_text: Literal["sentence", "sentence+paragraph"] = Field(
        "sentence", description="encode a candidate as its sentence, or as sentence then paragraph (LAReQA)"
    )
    max_seq_length: int = Field(256, ge=8, le=512, description="tokens per text when encoding")
    batch_size: int = Field(64, ge=1, le=4096, description="texts per encoding batch")
    precision: Literal["fp32", "int8"] = Field(
        "fp32", description="fp32, or int8: the fast path for exploration (~1.3x on CPU); never gated"
    )
    train_languages: list[str] | None = Field(None, description="languages seen in training, for seen/unseen averages")
    top_k: int = Field(100, ge=1, le=1000, description="depth of the written TREC run")
    output_dir: Path | None = Field(None, description="results folder (default: under the xlir cache)")
