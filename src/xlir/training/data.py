"""Training data: sources, a validation split by parallel id, and triplets with hard negatives.

A *triplet* is ``(question in language X, its answer sentence in language Y, a negative in Y)``
for one parallel id. Every (parallel id, X, Y) combination the data allows is materialised once
as a row of three texts; which rows form a batch is the sampler's business
(``xlir.training.samplers``), so the metadata (parallel id, languages, source) lives in a
``TripletTable`` beside the texts and never reaches the loss.

Negatives (our choice, docs/METHOD.md section 1): another sentence of the same paragraph in Y; when
the paragraph has no other sentence, a sentence of another paragraph in Y. The pick is a hash of
(seed, source, parallel id, Y): deterministic, and independent of row order and of other rows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from xlir.errors import XlirError

TEXT_COLUMNS = ("anchor", "positive", "negative")
"""The columns the trainer's collator sees, in the order MultipleNegativesRankingLoss reads."""
PIVOT_COLUMNS = ("anchor_pivot", "positive_pivot")
"""The pivot-language versions of a row's question and answer sentence, after the text columns when
the alignment term is on: its targets (xlir.training.losses.LengthGroupedMNRLoss, align_weight)."""
PIVOT_LANGUAGE = "en"
"""The language every other one is aligned to: the base encoder's best (e5 is trained mostly on
English), and present in every MLQA-R parallel id."""

_FILE_SUFFIXES = (".jsonl", ".json", ".parquet", ".pq")
TEST_DATASETS = frozenset({"xquad-r", "dream"})
"""Zero-shot test sets. Only DREAM's ``train`` split may serve as training (and validation) data."""


def is_test_source(name: str) -> bool:
    """True for a training source name that is (a split of) a test dataset: ``xquad-r``, ``dream:test``."""
    base, _, split = name.partition(":")
    return base in TEST_DATASETS and not (base == "dream" and split == "train")


@dataclass(frozen=True)
class TrainingSource:
    """One training source: a name, a content version and its canonical question table."""

    name: str
    version: str
    questions: pd.DataFrame

    @property
    def size(self) -> int:
        """Number of questions (rows); batches pick a source in proportion to it."""
        return len(self.questions)


def load_source(spec: str, languages: list[str] | None = None) -> TrainingSource:
    """A named dataset (``mlqa-r``, ``dream``, ``dream:train``) or a JSONL/Parquet file.

    A named dataset with a ``train`` split (DREAM) gives that split unless another is named.
    """
    path = Path(spec).expanduser()
    if path.suffix.lower() in _FILE_SUFFIXES or path.exists() or "/" in spec:
        if not path.is_file():
            raise XlirError(f"training data file {spec!r} does not exist")
        from xlir.data.readers import read_table
        from xlir.data.schema import content_version
        from xlir.digest import sha256_file

        fmt = "parquet" if path.suffix.lower() in (".parquet", ".pq") else "jsonl"
        questions, _ = read_table(path, fmt=fmt)
        name, version = str(path), content_version([(path.name, sha256_file(path))])
    else:
        from xlir.data import load_dataset, source

        base, _, split = spec.partition(":")
        info = source(base)
        if not split and "train" in info.get("splits", {}):
            split = "train"
        name = f"{base}:{split}" if split else base
        if is_test_source(name):
            raise XlirError(
                f"training source {name!r} is a zero-shot test set: training on it would make its evaluation a fit, "
                "not a measurement; train on mlqa-r, dream:train or your own files"
            )
        ds = load_dataset(base, split=split or None)
        questions, version = ds.questions, ds.version
    if languages:
        questions = questions[questions["lang"].isin(languages)]
    questions = questions.drop_duplicates(["parallel_id", "lang"]).reset_index(drop=True)
    if questions.empty:
        where = f" in languages {languages}" if languages else ""
        raise XlirError(f"training source {spec!r} has no questions{where}")
    return TrainingSource(name=name, version=version, questions=questions)


def stable_hash(*parts) -> int:
    """A 63-bit integer hash of ``parts``, the same on every machine and Python run."""
    h = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") >> 1


def split_by_parallel_id(
    questions: pd.DataFrame, fraction: float, seed: int, source: str = ""
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(train, validation)`` rows; a parallel id is wholly on one side, never split by row.

    Parallel ids that share a paragraph (in any language) are held out together (our choice),
    so no validation answer is a training positive or same-paragraph negative either. Groups
    are taken in a seeded order until ``fraction`` of the parallel ids is reached (the last group
    may overshoot it); at least one group is held out when ``fraction > 0``, and at least one
    stays for training.
    """
    if fraction <= 0 or questions.empty:
        return questions, questions.iloc[:0]
    group = _paragraph_groups(questions)  # parallel id -> group id
    groups = sorted(set(group.values()))
    if len(groups) < 2:
        raise XlirError(
            f"training source {source or '?'}: its parallel ids all share one paragraph, so none can be "
            "held out for validation; set validation_fraction to 0"
        )
    order = sorted(groups, key=lambda g: stable_hash(seed, source, "split", g))
    sizes = pd.Series(list(group.values())).value_counts()
    target = fraction * len(group)
    held, count = set(), 0
    for g in order[:-1]:  # never hold out every group
        held.add(g)
        count += int(sizes[g])
        if count >= target - 0.5:
            break
    is_val = questions["parallel_id"].map(group).isin(held)
    return questions[~is_val].reset_index(drop=True), questions[is_val].reset_index(drop=True)


def _paragraph_groups(questions: pd.DataFrame) -> dict[str, int]:
    """Connected components of parallel ids linked by a shared (language, paragraph)."""
    pids = sorted(questions["parallel_id"].unique())
    parent = {p: p for p in pids}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for _, ids in questions.groupby(["lang", "paragraph"], sort=False)["parallel_id"]:
        ids = ids.unique()
        root = find(ids[0])
        for other in ids[1:]:
            r = find(other)
            if r != root:
                parent[r] = root
    roots = {find(p) for p in pids}
    code = {r: i for i, r in enumerate(sorted(roots))}
    return {p: code[find(p)] for p in pids}


def pick_negative(row, seed: int, source: str, pool: "_SentencePool") -> str:
    """A same-paragraph sentence other than the answer, else a sentence of another paragraph."""
    h = stable_hash(seed, source, row.parallel_id, row.lang, "negative")
    own = [s for s in dict.fromkeys(row.negatives) if s != row.answer_sentence and s.strip()]
    if own:
        return own[h % len(own)]
    neg = pool.other_paragraph(row.paragraph, row.answer_sentence, h)
    if neg is None:
        raise XlirError(
            f"training source {source}: language {row.lang!r} has no sentence outside the paragraph of "
            f"question {row.parallel_id!r}, so it has no negative; add data in {row.lang!r} or leave it out"
        )
    return neg


class _SentencePool:
    """Every sentence of one language with its paragraph, for fallback negatives."""

    def __init__(self, rows: pd.DataFrame):
        pairs = {}
        for r in rows.itertuples(index=False):
            for s in (r.answer_sentence, *r.negatives):
                if s.strip():
                    pairs.setdefault((r.paragraph, s), None)
        self.pairs = sorted(pairs)  # sorted: independent of row order

    def other_paragraph(self, paragraph: str, positive: str, h: int) -> str | None:
        n = len(self.pairs)
        if n == 0:
            return None
        start = h % n
        for k in range(n):
            p, s = self.pairs[(start + k) % n]
            if p != paragraph and s != positive:
                return s
        return None


@dataclass
class TripletTable:
    """Texts of every allowed triplet plus the metadata the sampler needs, row-aligned.

    Arrays are indexed by dataset row: ``source`` (index into ``sources``), ``pid`` (a global code
    of (source, parallel id)), ``lq``/``lp`` (codes into ``languages``), ``pos``/``neg`` (codes of
    the passage texts, to keep duplicate passages out of one batch).
    """

    anchor: list[str]
    positive: list[str]
    negative: list[str]
    source: np.ndarray
    pid: np.ndarray
    lq: np.ndarray
    lp: np.ndarray
    pos: np.ndarray
    neg: np.ndarray
    sources: list[str]
    source_sizes: list[int]
    languages: list[str]
    parallel_ids: list[tuple[str, str]] = field(default_factory=list)
    anchor_pivot: list[str] = field(default_factory=list)
    positive_pivot: list[str] = field(default_factory=list)
    """Row-aligned ``PIVOT_LANGUAGE`` question and answer sentence of the row's parallel id (the row's
    own texts where the id has no pivot-language version)."""

    def __len__(self) -> int:
        return len(self.anchor)

    def to_dataset(self, *, pivot: bool = False):
        """A ``datasets.Dataset`` with only the three text columns (what the collator sees), and the
        two pivot columns after them with ``pivot`` (for the alignment term)."""
        from datasets import Dataset

        return Dataset.from_dict({c: getattr(self, c) for c in TEXT_COLUMNS + (PIVOT_COLUMNS if pivot else ())})

    def frame(self) -> pd.DataFrame:
        """Texts and decoded metadata, for inspection and tests."""
        return pd.DataFrame(
            {
                "source": [self.sources[i] for i in self.source],
                "parallel_id": [self.parallel_ids[i][1] for i in self.pid],
                "lang_q": [self.languages[i] for i in self.lq],
                "lang_p": [self.languages[i] for i in self.lp],
                "anchor": self.anchor,
                "positive": self.positive,
                "negative": self.negative,
            }
        )


def build_triplets(parts: list[tuple[str, pd.DataFrame]], seed: int) -> TripletTable:
    """All (parallel id, X, Y) triplets of each ``(source name, questions)`` part.

    For a parallel id present in k languages that is k*k rows (k mono, k*(k-1) cross).
    """
    cols = {k: [] for k in ("anchor", "positive", "negative", "source", "pid", "lq", "lp", *PIVOT_COLUMNS)}
    languages = sorted({lang for _, q in parts for lang in q["lang"].unique()})
    lang_code = {lang: i for i, lang in enumerate(languages)}
    parallel_ids: list[tuple[str, str]] = []
    sizes = []
    for s, (name, q) in enumerate(parts):
        sizes.append(len(q))
        pools = {lang: _SentencePool(rows) for lang, rows in q.groupby("lang", sort=True)}
        by_pid: dict[str, list] = {}
        for row in q.sort_values(["parallel_id", "lang"]).itertuples(index=False):
            neg = pick_negative(row, seed, name, pools[row.lang])
            by_pid.setdefault(row.parallel_id, []).append((lang_code[row.lang], row.question, row.answer_sentence, neg))
        for pid, rows in by_pid.items():
            code = len(parallel_ids)
            parallel_ids.append((name, pid))
            pivot = next((r for r in rows if languages[r[0]] == PIVOT_LANGUAGE), None)
            for lq, question, _, _ in rows:
                for lp, _, positive, negative in rows:
                    cols["anchor_pivot"].append(pivot[1] if pivot else question)
                    cols["positive_pivot"].append(pivot[2] if pivot else positive)
                    cols["anchor"].append(question)
                    cols["positive"].append(positive)
                    cols["negative"].append(negative)
                    cols["source"].append(s)
                    cols["pid"].append(code)
                    cols["lq"].append(lq)
                    cols["lp"].append(lp)
    n = len(cols["anchor"])
    codes, _ = pd.factorize(pd.Series(cols["positive"] + cols["negative"], dtype=object))
    return TripletTable(
        anchor=cols["anchor"],
        positive=cols["positive"],
        negative=cols["negative"],
        source=np.asarray(cols["source"], dtype=np.int32),
        pid=np.asarray(cols["pid"], dtype=np.int64),
        lq=np.asarray(cols["lq"], dtype=np.int32),
        lp=np.asarray(cols["lp"], dtype=np.int32),
        pos=codes[:n].astype(np.int64),
        neg=codes[n:].astype(np.int64),
        sources=[name for name, _ in parts],
        source_sizes=sizes,
        languages=languages,
        parallel_ids=parallel_ids,
        anchor_pivot=cols["anchor_pivot"],
        positive_pivot=cols["positive_pivot"],
    )


@dataclass
class TrainingData:
    """Training and validation triplets of every source, and what they were built from."""

    train: TripletTable
    validation: TripletTable | None
    versions: dict[str, str]
    counts: dict[str, dict[str, int]]
    validation_questions: dict[str, pd.DataFrame] = field(default_factory=dict)
    """The held-out canonical question rows per source: the retrieval validation's queries and pool."""


def prepare_training_data(
    specs: list[str], *, seed: int = 0, validation_fraction: float = 0.05, languages: list[str] | None = None,
    holdout_languages: list[str] | None = None,
) -> TrainingData:
    """Load each source, hold out a validation share by parallel id, build both triplet tables.

    ``holdout_languages`` are removed from the training side only (after the split, so the validation
    ids are the same with or without them): the validation keeps them as languages training never saw.
    """
    sources = [load_source(spec, languages) for spec in specs]
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise XlirError(f"training sources resolve to the same data twice: {names}")
    train_parts, val_parts, counts, held_out = [], [], {}, {}
    for src in sources:
        tr, va = split_by_parallel_id(src.questions, validation_fraction, seed, src.name)
        if holdout_languages:
            tr = tr[~tr["lang"].isin(holdout_languages)].reset_index(drop=True)
        train_parts.append((src.name, tr))
        if len(va):
            val_parts.append((src.name, va))
            held_out[src.name] = va
        counts[src.name] = {
            "train_questions": len(tr),
            "train_parallel_ids": int(tr["parallel_id"].nunique()),
            "validation_questions": len(va),
            "validation_parallel_ids": int(va["parallel_id"].nunique()),
        }
    train = build_triplets(train_parts, seed)
    validation = build_triplets(val_parts, seed) if val_parts else None
    return TrainingData(train, validation, {s.name: s.version for s in sources}, counts, held_out)
