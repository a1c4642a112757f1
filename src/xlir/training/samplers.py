"""Batch strategies of hybrid batch training (arXiv 2408.10536; docs/METHOD.md section 1).

- ``mono``: every triplet has query language == passage language; the batch language is drawn
  uniformly over the source's languages.
- ``cross``: every triplet has query language != passage language; a (query, passage) language
  pair is drawn uniformly per triplet among the pairs the source has.
- ``hybrid``: one coin flip per batch, mono with probability ``alpha``, else cross.

Every batch comes from one training source, drawn in proportion to its size (questions). No two
triplets of a batch share a parallel id (a translation of a positive would be a false negative),
and (our choice) no passage text appears twice as a positive, or as one triplet's positive and
another's negative.

Batch ``b`` of epoch ``e`` is a pure function of ``(seed, e, b)``: its random generator is seeded
with exactly that. So the sequence is reproducible, any batch can be computed without the ones
before it, and the trainer's "skip the first K batches" on resume lands on the same data.

When a language (mono) or every pair (cross) runs out of parallel ids not yet in the batch, the
batch is simply shorter; sampling never loops forever.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from sentence_transformers.base.sampler import DefaultBatchSampler

from xlir.errors import XlirError
from xlir.training.data import TEXT_COLUMNS

STRATEGIES = ("mono", "cross", "hybrid")
_TRIES = 8  # random draws before falling back to filtering a pool


@dataclass(frozen=True)
class Batch:
    """One planned batch: its source, kind (``mono``/``cross``) and dataset rows."""

    source: int
    kind: str
    rows: list[int]


class _SourcePools:
    """Row indices of one source, grouped by language (mono) and by language pair (cross)."""

    def __init__(self, rows: np.ndarray, lq: np.ndarray, lp: np.ndarray):
        self.mono: list[np.ndarray] = []
        self.cross: list[np.ndarray] = []
        self.mono_langs: list[int] = []
        self.cross_pairs: list[tuple[int, int]] = []
        if len(rows) == 0:
            return
        keys = lq[rows].astype(np.int64) * 1_000_003 + lp[rows]
        order = np.argsort(keys, kind="stable")
        sorted_rows, sorted_keys = rows[order], keys[order]
        bounds = np.flatnonzero(np.diff(sorted_keys)) + 1
        for chunk in np.split(np.arange(len(sorted_rows)), bounds):
            members = sorted_rows[chunk]
            q, p = int(lq[members[0]]), int(lp[members[0]])
            if q == p:
                self.mono_langs.append(q)
                self.mono.append(members)
            else:
                self.cross_pairs.append((q, p))
                self.cross.append(members)


class HybridBatchSampler(DefaultBatchSampler):
    """Mono / cross / hybrid batches over a ``TripletTable``'s rows (docs/METHOD.md section 1).

    The batch is where hybrid training happens. With in-batch negatives, a query is contrasted with
    every other passage of its batch: a mono batch (query and passages in one language) teaches
    ranking within a language, a cross batch (query language != passage language) teaches that a
    translated answer beats a same-language non-answer, and drawing one or the other per batch
    (mono with probability ``alpha``) keeps both. The sampler also keeps false negatives out of a
    batch: no two rows share a parallel id, and with ``unique_passages`` no passage text is a
    positive twice, or one row's positive and another's negative.

    Each batch: a source drawn in proportion to its number of questions; its kind (``mono``,
    ``cross``, or under ``hybrid`` mono with probability ``alpha``); then rows drawn uniformly
    (mono: from one language, itself drawn uniformly; cross: each row from a language pair drawn
    uniformly). A batch is shorter than ``batch_size`` when its language or every pair runs out of
    admissible rows.

    **Single-language sources.** A source without any parallel id in two languages (DREAM,
    English only) has no cross rows. Under ``hybrid`` its batches are mono whatever the coin says,
    so ``alpha`` is the mono share of multilingual sources only; overall it is
    ``alpha + (1 - alpha) * p``, p being the batch share of such sources. Under ``cross`` they are
    skipped (batch share 0, names in ``skipped_sources``, which the trainer logs), and when every
    source is skipped the sampler raises. Under ``mono`` every source is used.

    **Epochs.** ``len(sampler)`` is ``num_batches``: by default ``ceil(Q / batch_size)``, Q being
    the questions (question-table rows) of the usable sources. That is an epoch's length, not a
    pass over the rows: batches are drawn independently, so within an epoch a row can appear in
    several batches and another in none. Batch ``b`` of epoch ``e`` is ``plan(b, e)``, computed from
    a generator seeded with ``(seed, e, b)`` alone: reproducible, and computable without the batches
    before it (a resumed run lands on the same data). The trainer calls ``set_epoch(e)`` at the
    start of each epoch, so every epoch draws other batches; iterating yields the current epoch's
    ``plan(0).rows`` to ``plan(len(sampler) - 1).rows``.

    In training, ``BatchSamplerFactory`` builds it for ``SentenceTransformerTrainingArguments
    (batch_sampler=...)``. The table (metadata) stays here; the dataset handed to the collator has
    only text columns.

    Args:
        dataset: the collator's dataset, row-aligned with ``table`` (its length is checked), or
            None to plan batches without one.
        batch_size: the most rows (triplets) a batch holds.
        drop_last: sentence-transformers' batch-sampler argument, kept by the base class;
            planning ignores it, and short batches are yielded all the same.
        valid_label_columns: as ``drop_last``.
        generator: as ``drop_last``; batches use their own seeded generators.
        seed: seed of every batch (None counts as 0).
        table: the ``TripletTable`` holding each row's source, parallel id, languages and
            passage-text codes.
        strategy: ``mono``, ``cross`` or ``hybrid``.
        alpha: under ``hybrid``, the probability that a batch is mono; in [0, 1].
        num_batches: batches per epoch, instead of the default above.
        unique_passages: keep passage texts from repeating within a batch, as above.

    Raises:
        XlirError: an unknown strategy, ``alpha`` outside [0, 1], or no source the strategy can
            use (no triplets at all, or ``cross`` without a parallel id in two languages).
        ValueError: ``dataset`` and ``table`` differ in length.

    Example:
        ```python
        from xlir.training.data import prepare_training_data
        from xlir.training.samplers import HybridBatchSampler

        data = prepare_training_data(["mlqa-r"], seed=0, validation_fraction=0.1)
        sampler = HybridBatchSampler(data.train.to_dataset(), batch_size=32, seed=0,
                                     table=data.train, strategy="hybrid", alpha=0.5)
        len(sampler)               # batches per epoch
        batch = sampler.plan(0)    # Batch(source=0, kind="mono" or "cross", rows=[...])
        sampler.set_epoch(1)       # epoch 1: other batches, as reproducible
        ```
    """

    def __init__(
        self,
        dataset,
        batch_size: int,
        drop_last: bool = False,
        valid_label_columns: list[str] | None = None,
        generator=None,
        seed: int = 0,
        *,
        table,
        strategy: str = "hybrid",
        alpha: float = 0.5,
        num_batches: int | None = None,
        unique_passages: bool = True,
    ) -> None:
        super().__init__(
            dataset,
            batch_size=batch_size,
            drop_last=drop_last,
            valid_label_columns=valid_label_columns,
            generator=generator,
            seed=seed,
        )
        if strategy not in STRATEGIES:
            raise XlirError(f"unknown batch strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
        if not 0.0 <= alpha <= 1.0:
            raise XlirError(f"alpha must be in [0, 1], got {alpha}")
        if dataset is not None and len(dataset) != len(table):
            raise ValueError(f"dataset has {len(dataset)} rows but the triplet table {len(table)}")
        self.table = table
        self.strategy = strategy
        self.alpha = float(alpha)
        self.seed = int(seed or 0)
        self.unique_passages = unique_passages
        n_sources = len(table.sources)
        self.pools = [
            _SourcePools(np.flatnonzero(table.source == s), table.lq, table.lp) for s in range(n_sources)
        ]
        sizes = np.asarray(table.source_sizes, dtype=float)
        usable = np.array([self._usable(p) for p in self.pools])
        if not usable.any():
            raise XlirError(self._unusable_message())
        sizes = np.where(usable, sizes, 0.0)
        self.source_p = sizes / sizes.sum()
        self.skipped_sources = [table.sources[s] for s in range(n_sources) if not usable[s]]
        questions = int(sum(np.asarray(table.source_sizes)[usable]))
        self.num_batches = int(num_batches) if num_batches else max(1, -(-questions // batch_size))

    def _usable(self, pools: _SourcePools) -> bool:
        if self.strategy == "cross":
            return bool(pools.cross)
        return bool(pools.mono)

    def _unusable_message(self) -> str:
        if self.strategy == "cross":
            return (
                "cross batches need questions in two languages under one parallel id, and no training "
                f"source has any ({', '.join(self.table.sources)}); use strategy mono or hybrid"
            )
        return "the training data has no triplets"

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[int]]:
        for b in range(self.num_batches):
            yield self.plan(b).rows

    def plan(self, index: int, epoch: int | None = None) -> Batch:
        """Batch ``index`` of ``epoch`` (default: the current epoch)."""
        epoch = self.epoch if epoch is None else epoch
        rng = np.random.default_rng([self.seed, int(epoch), int(index)])
        s = int(rng.choice(len(self.pools), p=self.source_p))
        pools = self.pools[s]
        if self.strategy == "mono":
            kind = "mono"
        elif self.strategy == "cross":
            kind = "cross"
        else:
            kind = "mono" if rng.random() < self.alpha else "cross"
            if not pools.cross:  # a one-language source can only make mono batches
                kind = "mono"
        return Batch(s, kind, self._fill(rng, pools, kind))

    def _fill(self, rng: np.random.Generator, pools: _SourcePools, kind: str) -> list[int]:
        t = self.table
        rows: list[int] = []
        pids: set[int] = set()
        positives: set[int] = set()
        passages: set[int] = set()  # positives and negatives of the batch

        def ok(r: int) -> bool:
            if t.pid[r] in pids:
                return False
            if self.unique_passages and (t.pos[r] in passages or t.neg[r] in positives):
                return False
            return True

        def take(r: int) -> None:
            rows.append(int(r))
            pids.add(int(t.pid[r]))
            positives.add(int(t.pos[r]))
            passages.update((int(t.pos[r]), int(t.neg[r])))

        if kind == "mono":
            pool = pools.mono[int(rng.integers(len(pools.mono)))]
            while len(rows) < self.batch_size:
                r = _draw(pool, rng, ok)
                if r is None:
                    break
                take(r)
        else:
            live = list(range(len(pools.cross)))
            while len(rows) < self.batch_size and live:
                k = int(rng.integers(len(live)))
                r = _draw(pools.cross[live[k]], rng, ok)
                if r is None:
                    live.pop(k)  # this pair has no id left for this batch
                    continue
                take(r)
        return rows


def _draw(pool: np.ndarray, rng: np.random.Generator, ok) -> int | None:
    """A uniform row of ``pool`` passing ``ok``; ``None`` when there is none."""
    for _ in range(_TRIES):
        r = int(pool[rng.integers(len(pool))])
        if ok(r):
            return r
    allowed = [int(r) for r in pool if ok(r)]
    if not allowed:
        return None
    return allowed[int(rng.integers(len(allowed)))]


def content_key(columns: dict[str, list[str]]) -> tuple[int, str]:
    """``(rows, hash of the columns' texts in order)``: what identifies a triplet dataset's content."""
    h = hashlib.blake2b(digest_size=16)
    rows = 0
    for name in sorted(columns):
        values = columns[name]
        rows = len(values)
        h.update(name.encode() + b"\x00")
        for text in values:
            h.update(text.encode("utf-8", "surrogatepass") + b"\x1f")
    return rows, h.hexdigest()


class BatchSamplerFactory:
    """A ``batch_sampler`` callable for ``SentenceTransformerTrainingArguments``.

    ``tables`` maps a name (``train``, ``validation``) to ``(table, options)``. The trainer calls the
    factory for the training and the evaluation dataset alike with ``(dataset, batch_size, drop_last,
    valid_label_columns, generator, seed)``; the dataset is matched to its table by content (the
    number of rows and a hash of the text columns, ``content_key``), not by object identity, so a
    copy or a wrapper the trainer makes still finds its metadata. ``built`` keeps each
    ``HybridBatchSampler`` made, by name. Pickles (inside the training arguments the trainer saves
    with each checkpoint) without the tables.
    """

    def __init__(self, tables: dict[str, tuple], **defaults):
        self.tables = tables
        self.defaults = defaults
        self.built: dict[str, HybridBatchSampler] = {}
        self._keys = {content_key({c: getattr(t, c) for c in TEXT_COLUMNS}): name for name, (t, _) in tables.items()}

    def __call__(self, dataset, batch_size, drop_last=False, valid_label_columns=None, generator=None, seed=0):
        missing = [c for c in TEXT_COLUMNS if c not in dataset.column_names]
        name = None if missing else self._keys.get(content_key({c: dataset[c] for c in TEXT_COLUMNS}))
        if name is None:
            raise XlirError(
                f"the batch sampler was asked for a dataset of {len(dataset)} rows and columns "
                f"{list(dataset.column_names)} that matches none of its triplet tables "
                f"({', '.join(f'{n}: {len(t)} rows' for n, (t, _) in self.tables.items())})"
            )
        table, options = self.tables[name]
        kwargs = {**self.defaults, **options}
        kwargs.setdefault("seed", seed)
        sampler = HybridBatchSampler(
            dataset,
            batch_size=batch_size,
            drop_last=drop_last,
            valid_label_columns=valid_label_columns,
            generator=generator,
            table=table,
            **kwargs,
        )
        self.built[name] = sampler
        return sampler

    def __getstate__(self):
        return {"tables": {}, "defaults": self.defaults, "built": {}, "_keys": {}}

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.defaults.items())
        return f"{type(self).__name__}({opts})"
