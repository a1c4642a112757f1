"""Model selection on held-out training-side data: retrieval validation, one criterion, WiSE-FT.

Why: the loss on held-out triplets says little about what the gates measure (Mo./Cr./Mul. mAP and
rank distance over a multilingual pool), and a fine-tuned encoder can lose monolingual quality
while its Mul. mAP climbs. So every checkpoint is scored with the evaluation engine itself on the
held-out validation parallel ids of the training sources (their questions against the multilingual
pool of every sentence of their paragraphs), and the run returns the best checkpoint, merged with
the base encoder in weight space (WiSE-FT, Wortsman et al. 2022) at the mixing weight the same
criterion prefers. The test datasets (XQuAD-R, DREAM's dev and test splits) are never read here:
selecting on them would make their numbers a fit, not a zero-shot measurement.

The criterion (higher is better)::

    criterion = Mul. mAP - 10 * max(0, (Mo. mAP of the base encoder - mo_tolerance) - Mo. mAP)

Mul. mAP is what hybrid training raises; the penalty makes any monolingual loss beyond the
tolerance cost ten times its size, the way the gates refuse a model that loses Mo.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from xlir.errors import XlirError
from xlir.training.data import TEST_DATASETS, is_test_source
from xlir.models.runtime import bf16_forward, check_precision, precision_fingerprint, quantize_int8

log = logging.getLogger(__name__)

PREFIX = "val"
"""Metric prefix of the retrieval validation: ``val.map.mo``, ``val.map.mul``, ``val.rank_distance``, ..."""
HEADLINE = ("map.mo", "map.cr", "map.mul", "rank_distance", "r1.mo", "r10.mul", "map.mo.seen", "map.mo.unseen",
            "map.mul.unseen")
"""The ``val.*`` metrics kept; the ``seen``/``unseen`` ones exist when languages are held out of training."""
MO_PENALTY = 10.0


def criterion(metrics: dict[str, float], base_mo: float, mo_tolerance: float = 0.0,
              base_mo_unseen: float | None = None) -> float:
    """The selection criterion of the module docstring, from ``val.*`` metrics. With languages held out
    of training (``holdout_languages``), their Mo. mAP (``val.map.mo.unseen``) is penalised the same way
    against the base encoder's (``base_mo_unseen``)."""
    shortfall = max(0.0, (base_mo - mo_tolerance) - metrics[f"{PREFIX}.map.mo"])
    unseen = metrics.get(f"{PREFIX}.map.mo.unseen")
    if base_mo_unseen is not None and unseen is not None:
        shortfall += max(0.0, (base_mo_unseen - mo_tolerance) - unseen)
    return float(metrics[f"{PREFIX}.map.mul"] - MO_PENALTY * shortfall)


class RetrievalValidation:
    """LAReQA retrieval on held-out validation questions, scored by the evaluation engine.

    Args:
        parts: ``(source name, canonical validation questions)`` per training source. Sources that
            are test datasets are refused (``XlirError``): selection never sees test data.
        max_seq_length: tokens per text when encoding (the training length).
        batch_size: texts per encoding batch.
        precision: ``fp32``; ``bf16`` (the fast path on CPUs with bf16 units: encoding under bf16
            autocast, ~2.7x faster); or ``int8`` (each checkpoint scored through an int8 copy, ~1.3x
            faster). The base encoder's reference is scored the same way, so the criterion compares
            like with like; the training model itself stays fp32.
        train_languages: the languages training saw, when some validation languages were held out of
            training: the metrics then include ``val.map.mo.seen`` / ``val.map.mo.unseen``.
    """

    def __init__(self, parts: Sequence[tuple[str, pd.DataFrame]], *, max_seq_length: int = 128, batch_size: int = 64,
                 precision: str = "fp32", train_languages: Sequence[str] | None = None):
        from xlir.data.readers import canonical_from_rows
        from xlir.data.schema import QADataset
        from xlir.evaluation.task import build_task

        test = [name for name, _ in parts if is_test_source(name)]
        if test:
            raise XlirError(
                f"retrieval validation would select the model on test data ({test}); train on other data, "
                "or set select to 'last' or 'loss'"
            )
        frames = []
        for i, (name, q) in enumerate(parts):  # parallel ids are unique per source only
            cols = ["parallel_id", "lang", "question", "answer_sentence", "paragraph", "negatives"]
            frames.append(q[cols].assign(parallel_id=f"s{i}/" + q["parallel_id"].astype(str), source=name))
        if not frames or sum(len(f) for f in frames) == 0:
            raise XlirError("retrieval validation needs held-out questions: set validation_fraction > 0")
        questions, candidates = canonical_from_rows(pd.concat(frames, ignore_index=True), "validation")
        self.dataset = QADataset(name="validation", version="-", questions=questions, candidates=candidates, meta={})
        self.task = build_task(self.dataset)
        self.max_seq_length = max_seq_length
        self.batch_size = batch_size
        self.precision = check_precision(precision)
        self.train_languages = sorted(train_languages) if train_languages else None

    @classmethod
    def from_training_data(cls, data, **kw) -> "RetrievalValidation | None":
        """From ``TrainingData.validation_questions``; None when nothing was held out."""
        parts = [(n, q) for n, q in (data.validation_questions or {}).items() if len(q)]
        return cls(parts, **kw) if parts else None

    @property
    def size(self) -> dict[str, int]:
        return {"questions": len(self.task.queries), "candidates": len(self.task.candidates)}

    def embed(self, model, fingerprint: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Normalised query and candidate embeddings (the model's ``query``/``document`` prompts).

        With the model's ``fingerprint`` (a model that does not change: the base encoder) they come
        from the evaluation's embedding cache, so every run on the same split encodes the base once.
        """
        import torch

        from xlir.evaluation.encode import encode_cached, encode_recorded

        queries, cands = self.task.queries["question"].tolist(), self.task.candidate_texts("sentence")
        if self.precision == "int8":
            model = quantize_int8(model)
        fast = bf16_forward(model) if self.precision == "bf16" else contextlib.nullcontext()
        if fingerprint is not None:
            kw = dict(batch_size=self.batch_size, max_seq_length=self.max_seq_length, show_progress=False)
            fingerprint = precision_fingerprint(fingerprint, self.precision)
            with fast:
                q = encode_cached(model, fingerprint, queries, "query", **kw)
                c = encode_cached(model, fingerprint, cands, "document", **kw)
            return q.embeddings, c.embeddings

        was_training = model.training
        model.eval()
        old = model.max_seq_length
        model.max_seq_length = self.max_seq_length
        try:
            with torch.inference_mode(), fast:
                out = [encode_recorded(model, texts, prompt, batch_size=self.batch_size,
                                       max_seq_length=self.max_seq_length)[0]
                       for texts, prompt in ((queries, "query"), (cands, "document"))]
        finally:
            model.max_seq_length = old
            model.train(was_training)
        return out[0], out[1]

    def score_embeddings(self, q: np.ndarray, c: np.ndarray) -> dict[str, float]:
        import faiss

        from xlir.evaluation.run import score_task

        scored = score_task(self.task, lambda a, b: faiss.pairwise_distances(q[a:b], c, faiss.METRIC_INNER_PRODUCT), PREFIX,
                            self.train_languages)
        return {f"{PREFIX}.{k}": float(scored.metrics[f"{PREFIX}.{k}"]) for k in HEADLINE if f"{PREFIX}.{k}" in scored.metrics}

    def score(self, model, fingerprint: str | None = None) -> dict[str, float]:
        """The headline ``val.*`` metrics of ``model`` (a SentenceTransformer)."""
        return self.score_embeddings(*self.embed(model, fingerprint))


def _evaluator_base():
    from sentence_transformers.base.evaluation.evaluator import BaseEvaluator

    return BaseEvaluator


class RetrievalValidationEvaluator(_evaluator_base()):
    """A sentence-transformers evaluator: the trainer calls it at every validation step, logs its
    metrics as ``eval_retrieval_*`` and keeps the checkpoint with the best ``eval_retrieval_criterion``."""

    def __init__(self, validation: RetrievalValidation, base_mo: float, mo_tolerance: float = 0.0,
                 base_mo_unseen: float | None = None):
        super().__init__()
        self.validation = validation
        self.base_mo = base_mo
        self.base_mo_unseen = base_mo_unseen
        self.mo_tolerance = mo_tolerance
        self.primary_metric = "retrieval_criterion"
        self.greater_is_better = True

    def __call__(self, model, output_path=None, epoch=-1, steps=-1) -> dict[str, float]:
        metrics = self.validation.score(model)
        metrics[f"{PREFIX}.criterion"] = criterion(metrics, self.base_mo, self.mo_tolerance, self.base_mo_unseen)
        out = {k.removeprefix("eval_"): v for k, v in val_to_trainer_metrics(metrics).items()}
        log.info("retrieval validation at step %s: %s", steps, {k: round(v, 4) for k, v in out.items()})
        return out  # the trainer adds the "eval_" prefix


def val_to_trainer_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """``val.map.mo`` -> ``eval_retrieval_map_mo``: the names the trainer logs; ``trainer_metrics_to_val`` reverses it."""
    return {"eval_retrieval_" + k.removeprefix(PREFIX + ".").replace(".", "_"): v for k, v in metrics.items()}


def trainer_metrics_to_val(logs: dict) -> dict[str, float]:
    """``eval_retrieval_map_mo`` -> ``val.map.mo`` (and ``val.criterion``): the stable names."""
    out = {}
    for k, v in logs.items():
        if k.startswith("eval_retrieval_"):
            name = k.removeprefix("eval_retrieval_")
            for h in HEADLINE:
                if name == h.replace(".", "_"):
                    name = h
            out[f"{PREFIX}.{name}"] = float(v)
    return out


# ------------------------------------------------------------------ WiSE-FT


def merged_state(base: dict, tuned: dict, lam: float) -> dict:
    """``(1 - lam) * base + lam * tuned`` for every floating tensor; others (integer buffers) from ``tuned``.

    ``lam = 0`` returns the base tensors exactly and ``lam = 1`` the tuned ones (no rounding).
    """
    if set(base) != set(tuned):
        raise XlirError(f"cannot merge: the models' parameters differ ({sorted(set(base) ^ set(tuned))[:5]})")
    out = {}
    for k, t in tuned.items():
        b = base[k]
        if b.shape != t.shape:
            raise XlirError(f"cannot merge: {k} has shape {tuple(b.shape)} in the base, {tuple(t.shape)} tuned")
        if not t.is_floating_point() or lam == 1.0:
            out[k] = t.clone()
        elif lam == 0.0:
            out[k] = b.to(t.dtype).clone()
        else:
            out[k] = (1.0 - lam) * b.to(t.dtype) + lam * t
    return out


@dataclass
class MergeChoice:
    """The chosen mixing weight and every weight tried with its ``val.*`` metrics and criterion."""

    lam: float
    tried: list[dict]


def choose_merge(model, base_state: dict, validation: RetrievalValidation, grid: Iterable[float], *, base_mo: float,
                 mo_tolerance: float = 0.0, known: dict[float, dict] | None = None,
                 early_stop: bool = False, tolerance: float = 0.0, base_mo_unseen: float | None = None) -> MergeChoice:
    """Score ``model`` merged with the base at each weight of ``grid`` (largest first), leave the chosen
    merge loaded in ``model`` and return the choice. ``known`` holds metrics already measured (the
    tuned model at 1.0).

    The choice: the smallest weight whose criterion is within ``tolerance`` of the best. Weights the
    validation cannot tell apart go to the one closer to the base encoder: WiSE-FT's point is that
    such merges keep more of what the base knew under distribution shift, which an in-domain
    validation does not see (docs/RESULTS.md). With ``tolerance`` 0, ties go to the larger weight.

    ``early_stop``: stop at the first weight that scores more than ``tolerance`` below the best so
    far. It picks what the full grid picks whenever the criterion is unimodal in lambda, which it
    was in all nine runs of the recipe ablation (benchmarks/results/recipe_ablation.jsonl), and
    saves one or two validation passes per run."""
    key = f"{PREFIX}.criterion"
    tuned = {k: v.detach().clone() for k, v in model.state_dict().items()}
    tried = []
    for lam in sorted(set(float(x) for x in grid), reverse=True):
        if known and lam in known:
            metrics = known[lam]
        else:
            model.load_state_dict(merged_state(base_state, tuned, lam))
            metrics = validation.score(model)
        row = {"lambda": lam, **metrics, key: criterion(metrics, base_mo, mo_tolerance, base_mo_unseen)}
        worse = bool(tried) and row[key] < max(r[key] for r in tried) - tolerance
        tried.append(row)
        if early_stop and worse:
            break
    top = max(r[key] for r in tried)
    near = [r for r in tried if r[key] >= top - tolerance]
    best = min(near, key=lambda r: r["lambda"]) if tolerance > 0 else max(near, key=lambda r: r["lambda"])
    model.load_state_dict(merged_state(base_state, tuned, best["lambda"]))
    return MergeChoice(best["lambda"], tried)


__all__ = [
    "HEADLINE", "MO_PENALTY", "MergeChoice", "PREFIX", "RetrievalValidation", "RetrievalValidationEvaluator",
    "TEST_DATASETS", "choose_merge", "criterion", "is_test_source", "merged_state", "trainer_metrics_to_val",
    "val_to_trainer_metrics",
]
