"""The contrastive loss with less padding: every text of a step embedded in length groups.

sentence-transformers embeds a triplet batch in two forwards: the anchors (questions), then the
positives and negatives merged, each padded to its own longest text. Answer sentences vary a lot in
length, so one long sentence pads all 64 candidate rows: on MLQA-R batches of 32 at max length 128,
54% of the tokens a step computes are padding (benchmarks/profile_training_step.py). Sorting
the step's texts by length and running ``groups`` forwards, each padded to its own longest text,
computes the same embeddings (equal up to float rounding: padding is masked out) with less work.
The loss itself is sentence-transformers' ``MultipleNegativesRankingLoss``, unchanged.

With ``align_weight`` it adds the cross-lingual alignment term of multilingual knowledge
distillation (Reimers and Gurevych 2020; sentence-transformers' ``MSELoss``): each question and
answer sentence is pulled towards the *base* encoder's embedding of its pivot-language (English)
version. Rows already in the pivot language are pulled towards their own base embedding, so the
term both aligns languages and keeps what the base encoder knew (fine-tuning on one domain
otherwise drifts it; docs/RESULTS.md, Recipe).
"""

from __future__ import annotations

from typing import Any

import torch
from sentence_transformers.base.losses.merged_forward import embed_columns, merge_feature_batches
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss


def _group_bounds(n: int, groups: int) -> list[tuple[int, int]]:
    groups = max(1, min(groups, n))
    edges = [round(i * n / groups) for i in range(groups + 1)]
    return [(a, b) for a, b in zip(edges, edges[1:]) if b > a]


def _metadata(features: dict[str, Any]) -> tuple:
    """What must agree for two columns to share a forward: the keys and the non-row values
    (``prompt_length``: queries and passages carry different prompts)."""
    return tuple(sorted((k, v if not isinstance(v, torch.Tensor) else tuple(v.shape[2:]) if v.ndim >= 2 else v.tolist())
                        for k, v in features.items() if k != "input_ids" and k != "attention_mask"))


def length_groups(features_list: list[dict[str, Any]], groups: int) -> tuple[list[dict[str, Any]], torch.Tensor] | None:
    """The step's rows in about ``groups`` batches, each of texts of similar length padded to its own
    longest, and for each batch row its place in the column-major order (column 0's rows, then column
    1's...). Columns that can share a forward (same prompt) are merged first; the groups are shared
    out in proportion to their rows. None when the columns differ in size, a column is padded on the
    left, or its features are not plain token tensors (then sentence-transformers' forwards run)."""
    rows = {f["input_ids"].shape[0] for f in features_list if isinstance(f.get("input_ids"), torch.Tensor)}
    if len(rows) != 1 or any("attention_mask" not in f or f["attention_mask"].ndim != 2 for f in features_list):
        return None
    (rows,) = rows
    sets: dict[tuple, list[int]] = {}
    for c, f in enumerate(features_list):
        if not bool(f["attention_mask"][:, 0].all()):
            return None
        sets.setdefault(_metadata(f), []).append(c)
    total = rows * len(features_list)
    chunks, places = [], []
    for columns in sets.values():
        cols = [features_list[c] for c in columns]
        merged = merge_feature_batches(cols) if len(cols) > 1 else dict(cols[0])
        if merged is None:
            return None
        mask = merged["attention_mask"]
        n, width = mask.shape
        place = torch.cat([torch.arange(c * rows, (c + 1) * rows) for c in columns])
        lengths = mask.sum(1)
        order = torch.argsort(lengths, stable=True)
        for begin, end in _group_bounds(n, max(1, round(groups * n / total))):
            idx = order[begin:end]
            longest = int(lengths[idx].max())
            chunk = {}
            for key, value in merged.items():
                if isinstance(value, torch.Tensor) and value.ndim >= 2 and value.shape[:2] == (n, width):
                    chunk[key] = value[idx, :longest]
                elif isinstance(value, torch.Tensor) and value.ndim >= 1 and value.shape[0] == n:
                    chunk[key] = value[idx]
                else:  # batch metadata (prompt_length, modality)
                    chunk[key] = value
            chunks.append(chunk)
            places.append(place[idx])
    return chunks, torch.cat(places)


def embed_length_grouped(model, features_list: list[dict[str, Any]], groups: int) -> list[torch.Tensor]:
    """One ``sentence_embedding`` tensor per column, computed in about ``groups`` length-sorted forwards."""
    grouped = length_groups(features_list, groups) if groups > 1 else None
    if grouped is None:
        return embed_columns(model, features_list)
    chunks, places = grouped
    sorted_emb = torch.cat([model(chunk)["sentence_embedding"] for chunk in chunks])
    emb = torch.empty_like(sorted_emb).index_copy(0, places, sorted_emb)  # back to column-major row order
    return list(emb.reshape(len(features_list), -1, *emb.shape[1:]).unbind(0))


def merged_columns_flops_view(features_list: list[dict[str, Any]], groups: int | None = None) -> list[dict[str, Any]]:
    """The batches a step's forwards run, as tensors of their padded shapes (for counting FLOPs):
    sentence-transformers' (anchors, then the merged candidates) or, with ``groups``, the length groups."""
    if groups:
        grouped = length_groups(features_list, groups)
        if grouped is not None:
            return grouped[0]
    rest = merge_feature_batches(list(features_list[1:])) if len(features_list) > 2 else None
    return [features_list[0], rest] if rest is not None else list(features_list)


def alignment_term(embeddings: list[torch.Tensor], targets: list[torch.Tensor]) -> torch.Tensor:
    """Mean squared distance between unit-length embeddings and their targets, ``2 - 2 cos``: the
    squared error of ``MSELoss`` summed over dimensions (so the weight does not depend on the width),
    on the cosine geometry the retrieval uses."""
    import torch.nn.functional as F

    terms = [(2 - 2 * F.cosine_similarity(e, t.to(e.dtype), dim=-1)).mean() for e, t in zip(embeddings, targets)]
    return torch.stack(terms).mean()


class LengthGroupedMNRLoss(MultipleNegativesRankingLoss):
    """``MultipleNegativesRankingLoss`` whose embeddings come from ``embed_length_grouped``.

    Args:
        model: the encoder being trained.
        groups: length-sorted forwards per step (1 = sentence-transformers' column forwards).
        teacher: the frozen base encoder (needed when ``align_weight > 0``); kept out of the module's
            parameters, so the optimiser and checkpoints never see it.
        align_weight: weight of the alignment term. The batch's last two columns are then the pivot
            question and answer sentence (``xlir.training.data.PIVOT_COLUMNS``), which only the teacher
            embeds; the loss is returned as ``{"contrastive", "alignment"}``, which the trainer sums and
            logs one by one.
    """

    def __init__(self, model, *, groups: int, teacher=None, align_weight: float = 0.0, **kw):
        super().__init__(model, **kw)
        self.groups = groups
        self.align_weight = float(align_weight)
        if self.align_weight > 0 and teacher is None:
            raise ValueError("align_weight > 0 needs the base encoder as teacher")
        if teacher is not None:
            teacher.eval()
            for p in teacher.parameters():
                p.requires_grad_(False)
        object.__setattr__(self, "teacher", teacher)  # not a submodule

    def forward(self, sentence_features, labels):
        features = list(sentence_features)
        if self.align_weight <= 0:
            embeddings = embed_length_grouped(self.model, features, self.groups)
            return self.compute_loss_from_embeddings(embeddings, labels)
        features, pivots = features[:-2], features[-2:]
        embeddings = embed_length_grouped(self.model, features, self.groups)
        device = embeddings[0].device
        if next(self.teacher.parameters()).device != device:
            self.teacher.to(device)
        with torch.no_grad():
            targets = embed_length_grouped(self.teacher, pivots, self.groups)
        return {
            "contrastive": self.compute_loss_from_embeddings(embeddings, labels),
            "alignment": self.align_weight * alignment_term(embeddings[:2], targets),
        }


__all__ = ["LengthGroupedMNRLoss", "alignment_term", "embed_length_grouped", "length_groups",
           "merged_columns_flops_view"]
