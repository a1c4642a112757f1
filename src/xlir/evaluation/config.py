"""``EvalConfig``: every knob of one zero-shot evaluation, with its default, bounds, title and meaning.

The single definition: ``xlir evaluate``'s options, the pipeline's evaluation params (the DAG's
trigger form) and the tests derive from these fields, so the CLI and a DAG run with the same
settings produce the same evaluation key (``xlir.registry.versions.eval_key``) and share results.
Imports stay light (pydantic only): the dag-processor imports this through the pipeline params.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from xlir.config import DEFAULT_BASE_MODEL

_EVAL = {"section": "Evaluation"}


class EvalConfig(BaseModel):
    """One zero-shot evaluation of one model on one dataset (LAReQA protocol)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(DEFAULT_BASE_MODEL, title="Model",
                       description="base-model spec, a trained model folder, or 'bm25'")
    dataset: str = Field("xquad-r", title="Dataset", description="xquad-r, mlqa-r or dream")
    split: str | None = Field(None, title="Split", description="dataset split where there are several (dream: test)")
    max_questions_per_lang: int | None = Field(
        None, ge=1, title="Evaluation questions per language", json_schema_extra=_EVAL,
        description="a seeded subset of questions per language (the pool stays complete); None = all",
    )
    seed: int = Field(0, ge=0, le=2**31 - 1, title="Evaluation seed", json_schema_extra=_EVAL,
                      description="seed of the question subset (kept apart from the training seed, so runs with "
                                  "other training seeds are gated on the same questions)")
    candidate_text: Literal["sentence", "sentence+paragraph"] = Field(
        "sentence", title="Candidate text", json_schema_extra=_EVAL,
        description="encode a candidate as its sentence, or as sentence then paragraph (LAReQA)",
    )
    max_seq_length: int = Field(
        128, ge=8, le=512, title="Evaluation max sequence length", json_schema_extra=_EVAL,
        description="tokens per text when encoding (the training length by default: XQuAD-R sentences fit)",
    )
    batch_size: int = Field(64, ge=1, le=4096, title="Encoding batch size", description="texts per encoding batch")
    precision: Literal["fp32", "bf16", "int8"] = Field(
        "fp32", title="Precision",
        description="fp32; or a fast path for exploration, never gated: bf16 (~2.7x, CPUs with AMX or AVX-512 BF16), "
                    "int8 (~1.3x, any CPU)"
    )
    train_languages: list[str] | None = Field(
        None, title="Training languages", description="languages seen in training, for seen/unseen averages"
    )
    top_k: int = Field(100, ge=1, le=1000, title="Run depth", description="depth of the written TREC run")
    output_dir: Path | None = Field(None, title="Output folder",
                                    description="results folder (default: under the xlir cache)")


__all__ = ["EvalConfig"]
