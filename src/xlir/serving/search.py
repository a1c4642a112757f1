"""``xlir search``: the k passages of a user's corpus closest to a question, by an encoder (the champion).

The corpus is a UTF-8 file: one passage per line (blank lines skipped; a passage's id is its line
number), or JSON Lines (``.jsonl``) with a ``text`` field and an optional ``id`` per line. Passages are
encoded with the model's ``document`` prompt, questions with its ``query`` prompt, both L2-normalised,
so a score is a cosine. The FAISS index (exact inner product) is cached under
``<xlir cache>/search/<model>/``, keyed by the model version, the model's files, the corpus content,
the prompt and the maximum length: a new champion version, or an edited corpus, builds a new index;
the same ones are read back without encoding the corpus again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from xlir.errors import DataFormatError, XlirError
from xlir.paths import atomic_write, cache_dir

log = logging.getLogger(__name__)

JSONL_SUFFIXES = (".jsonl", ".ndjson")


@dataclass(frozen=True)
class Corpus:
    path: str
    ids: list[str]
    texts: list[str]
    digest: str  # sha256 of the file's bytes


@dataclass(frozen=True)
class Hit:
    rank: int
    score: float
    id: str
    text: str


@dataclass(frozen=True)
class SearchResult:
    model: str  # label: "xlir-encoder v3 (champion)", or the spec
    version: int | None
    corpus: str
    passages: int
    index: str  # the index file
    index_cached: bool
    hits: dict[str, list[Hit]]  # per query, best first

    def as_dict(self) -> dict:
        return asdict(self)


def read_corpus(path: str | Path) -> Corpus:
    """The passages of ``path``; a ``DataFormatError`` naming the file for a missing, unreadable, badly
    encoded, malformed or empty corpus."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataFormatError(p, "no such corpus file")
    if p.is_dir():
        raise DataFormatError(p, "is a folder; give a corpus file (one passage per line, or JSON Lines with a "
                                 "\"text\" field)")
    from xlir.data.readers import read_utf8

    raw, text = read_utf8(p)
    ids, texts = [], []
    jsonl = p.suffix.lower() in JSONL_SUFFIXES
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if not jsonl:
            ids.append(str(n))
            texts.append(line.strip())
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        value = row.get("text") if isinstance(row, dict) else None
        if not isinstance(value, str) or not value.strip():
            raise DataFormatError(p, f"line {n}: expected a JSON object with a non-empty \"text\" string")
        ids.append(str(row.get("id", n)))
        texts.append(value.strip())
    if not texts:
        raise DataFormatError(p, "the corpus is empty: no passage to search (one passage per line, or JSON Lines "
                                 "with a \"text\" field)")
    return Corpus(str(p), ids, texts, hashlib.sha256(raw).hexdigest())


def index_path(model_label: str, key: str) -> Path:
    """Where the index of ``key`` lives, in a folder per model (and version)."""
    folder = re.sub(r"[^A-Za-z0-9._-]+", "_", model_label).strip("_")[:80] or "model"
    return cache_dir() / "search" / folder / f"{key}.faiss"


def _read_index(path: Path, rows: int, dim: int):
    """The cached index at ``path`` when it is whole and fits (``rows`` vectors of ``dim``), else None."""
    import faiss
    import numpy as np

    if not path.is_file():
        return None
    try:
        index = faiss.deserialize_index(np.fromfile(path, dtype=np.uint8))
    except (OSError, RuntimeError, ValueError) as e:
        log.warning("search index %s is unreadable (%s); building it again", path, e)
        return None
    if index.ntotal != rows or index.d != dim:
        log.warning("search index %s holds %d x %d, not %d x %d; building it again", path, index.ntotal, index.d, rows, dim)
        return None
    return index


def search(model: str, corpus_path: str | Path, queries: list[str], *, k: int = 10, max_seq_length: int | None = None,
           batch_size: int = 32, tracking_uri: str | None = None, show_progress: bool = False) -> SearchResult:
    """The top ``k`` passages of the corpus for each query, by ``model`` (``models:/NAME@ALIAS``,
    ``models:/NAME/VERSION``, or any base-model spec), building or reading the cached index."""
    import faiss
    import numpy as np

    from xlir.evaluation.encode import encode_recorded
    from xlir.models import load_encoder, model_fingerprint
    from xlir.serving.registered import model_folder

    queries = [q.strip() for q in queries if q and q.strip()]
    if not queries:
        raise XlirError("no question to search for; give one or more non-empty questions")
    if k < 1:
        raise XlirError(f"k must be at least 1 (got {k})")
    corpus = read_corpus(corpus_path)  # a bad corpus fails before the registry or the model is touched
    folder, label, registered = model_folder(model, tracking_uri)
    encoder = load_encoder(folder, max_seq_length=max_seq_length)
    fingerprint = model_fingerprint(folder)
    dim = encoder.get_embedding_dimension()
    ident = {"model": label if registered else None, "fingerprint": fingerprint, "corpus": corpus.digest,
             "prompt": encoder.prompts.get("document"), "max_seq_length": encoder.max_seq_length}
    key = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:24]
    path = index_path(f"{registered.name}-v{registered.version}" if registered else f"model-{fingerprint}", key)
    index = _read_index(path, len(corpus.texts), dim)
    cached = index is not None
    if index is None:
        t0 = time.perf_counter()
        emb, _ = encode_recorded(encoder, corpus.texts, "document", batch_size=batch_size,
                                 max_seq_length=encoder.max_seq_length, fingerprint=fingerprint, key=f"search-{key}",
                                 show_progress=show_progress)
        index = faiss.IndexFlatIP(dim)
        index.add(np.ascontiguousarray(emb, dtype=np.float32))
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: f.write(faiss.serialize_index(index).tobytes()))
        atomic_write(path.with_suffix(".json"), lambda f: f.write(json.dumps(
            {**ident, "model": label, "corpus_path": corpus.path, "passages": len(corpus.texts), "dim": dim},
            indent=2).encode()))
        log.info("built the search index of %d passages with %s in %.1f s: %s", len(corpus.texts), label,
                 time.perf_counter() - t0, path)
    q, _ = encode_recorded(encoder, queries, "query", batch_size=batch_size, max_seq_length=encoder.max_seq_length,
                           fingerprint=fingerprint)
    scores, rows = index.search(np.ascontiguousarray(q, dtype=np.float32), min(k, len(corpus.texts)))
    hits = {query: [Hit(r + 1, float(s), corpus.ids[i], corpus.texts[i]) for r, (s, i) in enumerate(zip(ss, ii)) if i >= 0]
            for query, ss, ii in zip(queries, scores, rows)}
    return SearchResult(label, registered.version if registered else None, corpus.path, len(corpus.texts), str(path),
                        cached, hits)


__all__ = ["Corpus", "Hit", "SearchResult", "index_path", "read_corpus", "search"]
