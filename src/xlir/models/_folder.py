"""Shared plumbing for the model folders xlir builds itself (bundled and tiny encoders).

Both are written as a plain Hugging Face ``BertModel`` folder plus the few JSON files that
make sentence-transformers load it as Transformer -> mean Pooling -> Normalize with E5
prompts. Writing those files directly (instead of ``SentenceTransformer.save``) avoids
instantiating and re-serialising a 470 MB model just to emit five small JSON files.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from xlir.paths import cache_dir

E5_QUERY_PREFIX = "query: "
E5_PASSAGE_PREFIX = "passage: "
E5_PROMPTS = {"query": E5_QUERY_PREFIX, "document": E5_PASSAGE_PREFIX}
MANIFEST = "xlir_manifest.json"
_ST = "sentence_transformers."  # module paths as sentence-transformers 6 writes them


def models_dir() -> Path:
    """Where prepared encoders live (follows ``XLIR_CACHE_DIR``)."""
    return cache_dir() / "models"


def bert_shapes(
    *, vocab: int, hidden: int, layers: int, ff: int, max_pos: int, type_vocab: int
) -> dict[str, tuple[int, ...]]:
    """Parameter names and shapes of a ``BertModel`` checkpoint, in load order.

    The pooler is listed although sentence-transformers never uses it: without it,
    transformers would initialise it at random on every load and report it as missing.
    """
    s: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (vocab, hidden),
        "embeddings.position_embeddings.weight": (max_pos, hidden),
        "embeddings.token_type_embeddings.weight": (type_vocab, hidden),
        "embeddings.LayerNorm.weight": (hidden,),
        "embeddings.LayerNorm.bias": (hidden,),
    }
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for lin, (o, n) in {
            "attention.self.query": (hidden, hidden),
            "attention.self.key": (hidden, hidden),
            "attention.self.value": (hidden, hidden),
            "attention.output.dense": (hidden, hidden),
            "intermediate.dense": (ff, hidden),
            "output.dense": (hidden, ff),
        }.items():
            s[p + lin + ".weight"] = (o, n)
            s[p + lin + ".bias"] = (o,)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            s[p + ln + ".weight"] = (hidden,)
            s[p + ln + ".bias"] = (hidden,)
    s["pooler.dense.weight"] = (hidden, hidden)
    s["pooler.dense.bias"] = (hidden,)
    return s


def write_bert_config(folder: Path, **fields) -> None:
    """A plain BertConfig: absolute positions from 0, exact GELU, post-LayerNorm.

    Written as JSON rather than through ``transformers.BertConfig`` so that preparing a
    model (and fingerprinting it) never imports torch; transformers fills in the defaults.
    """
    cfg = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_act": "gelu",
        "position_embedding_type": "absolute",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,
        "dtype": "float32",
        **fields,
    }
    (folder / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def write_tokenizer(folder: Path, tok, max_length: int) -> None:
    """Save a ``tokenizers.Tokenizer`` so ``AutoTokenizer`` loads it as a fast tokenizer (XLM-R specials)."""
    tok.save(str(folder / "tokenizer.json"))
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "mask_token": "<mask>",
        "cls_token": "<s>",
        "sep_token": "</s>",
        "model_max_length": max_length,
        "model_input_names": ["input_ids", "attention_mask"],
        "clean_up_tokenization_spaces": False,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2) + "\n")


def write_sentence_transformers_files(
    folder: Path, *, dim: int, prompts: dict[str, str] | None = None
) -> None:
    """modules.json & co.: Transformer (folder root) -> mean Pooling over all tokens -> Normalize."""

    def dump(rel: str, obj) -> None:
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(obj, indent=2) + "\n")

    modules = [
        ("", "base.modules.transformer.Transformer"),
        ("1_Pooling", "sentence_transformer.modules.pooling.Pooling"),
        ("2_Normalize", "base.modules.normalize.Normalize"),
    ]
    dump(
        "modules.json",
        [{"idx": i, "name": str(i), "path": path, "type": _ST + t} for i, (path, t) in enumerate(modules)],
    )
    dump(
        "config_sentence_transformers.json",
        {
            "model_type": "SentenceTransformer",
            "prompts": dict(prompts or E5_PROMPTS),
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )
    dump(
        "sentence_bert_config.json",
        {
            "transformer_task": "feature-extraction",
            "modality_config": {"text": {"method": "forward", "method_output_name": "last_hidden_state"}},
            "module_output_name": "token_embeddings",
        },
    )
    dump("1_Pooling/config.json", {"embedding_dimension": dim, "pooling_mode": "mean", "include_prompt": True})
    dump("2_Normalize/config.json", dict.fromkeys(("module_input_name", "module_output_name"), "sentence_embedding"))


def read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def _relax_permissions(root: Path) -> None:
    """mkdtemp (and some writers) create owner-only files; give the folder normal umask modes."""
    umask = os.umask(0)
    os.umask(umask)
    for p in [root, *root.rglob("*")]:
        p.chmod((0o777 if p.is_dir() else 0o666) & ~umask)


def build_atomically(
    dst: Path, build: Callable[[Path], dict], is_current: Callable[[dict], bool]
) -> Path:
    """Reuse ``dst`` if its manifest passes ``is_current``; else build in a temp dir and rename.

    A reader never sees a half-written folder: the manifest is written last and the folder
    appears in one ``rename``. A concurrent builder that loses the race adopts the winner's.
    """
    m = read_manifest(dst)
    if m is not None and is_current(m):
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        t0 = time.perf_counter()
        manifest = build(tmp)
        _relax_permissions(tmp)
        manifest["build_seconds"] = round(time.perf_counter() - t0, 3)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if dst.exists():  # stale or broken: move it aside first, then drop it
            old = dst.with_name(f".{dst.name}.old-{os.getpid()}-{time.time_ns()}")
            try:
                dst.rename(old)
            except OSError:
                pass
            shutil.rmtree(old, ignore_errors=True)
        try:
            tmp.rename(dst)
        except OSError:  # another process renamed its build in first
            m = read_manifest(dst)
            if m is None or not is_current(m):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dst
