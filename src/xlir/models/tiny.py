"""A tiny random BERT encoder: the whole pipeline end to end in seconds, with nothing to download.

Why: tests and smoke runs need a real ``SentenceTransformer`` with the same folder layout and
prompts as the bundled encoder, but fast. Weights come from numpy's seeded generator (not
torch's initialisers), so a seed gives the same bytes on any machine and torch version. The
tokenizer is byte-level BPE with no merges (256 byte symbols + XLM-R's special tokens), so
every script, emoji and control character maps to known ids.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xlir.models._folder import (
    E5_PROMPTS,
    bert_shapes,
    build_atomically,
    models_dir,
    write_bert_config,
    write_sentence_transformers_files,
    write_tokenizer,
)

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # ids 0..4, as in XLM-R (pad = 1)
DEFAULTS = {"hidden": 32, "layers": 2, "heads": 2, "ff": 64, "max_pos": 512}
BUILDER_VERSION = 2


def build_tokenizer():
    """Byte-level BPE without merges: one token per UTF-8 byte, ``<s> X </s>`` around it."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    vocab = {s: i for i, s in enumerate(SPECIALS)}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIALS])
    return tok


def build(dst: Path, seed: int = 0, **dims) -> dict:
    """Write a tiny sentence-transformers folder into ``dst``; same seed and dims, same bytes."""
    from safetensors.numpy import save_file

    d = {**DEFAULTS, **dims}
    tok = build_tokenizer()
    vocab = tok.get_vocab_size()
    shapes = bert_shapes(
        vocab=vocab, hidden=d["hidden"], layers=d["layers"], ff=d["ff"], max_pos=d["max_pos"], type_vocab=2
    )
    rng = np.random.default_rng(seed)
    state = {}
    for name, shape in shapes.items():  # BERT's init: N(0, 0.02) weights, zero biases, unit LayerNorm
        if name.endswith("LayerNorm.weight"):
            state[name] = np.ones(shape, np.float32)
        elif name.endswith("bias") or name.startswith("pooler."):  # pooler: unused, kept at zero
            state[name] = np.zeros(shape, np.float32)
        else:
            state[name] = rng.normal(0.0, 0.02, shape).astype(np.float32)
    save_file(state, str(dst / "model.safetensors"), metadata={"format": "pt"})
    write_bert_config(
        dst,
        vocab_size=vocab,
        hidden_size=d["hidden"],
        num_hidden_layers=d["layers"],
        num_attention_heads=d["heads"],
        intermediate_size=d["ff"],
        max_position_embeddings=d["max_pos"],
        type_vocab_size=2,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    write_tokenizer(dst, tok, max_length=d["max_pos"])
    write_sentence_transformers_files(dst, dim=d["hidden"], prompts=E5_PROMPTS)
    n = sum(a.size for k, a in state.items() if not k.startswith("pooler."))
    return {"parameters": int(n), "embedding_dim": d["hidden"]}


def prepare(seed: int = 0, dst: Path | None = None) -> Path:
    """Build (once per seed) and return ``cache_dir()/models/tiny`` (or ``tiny-seed{N}``)."""
    dst = dst or models_dir() / ("tiny" if seed == 0 else f"tiny-seed{seed}")
    want = {"name": "tiny", "seed": seed, "builder_version": BUILDER_VERSION, "dims": DEFAULTS}

    def is_current(m: dict) -> bool:
        return all(m.get(k) == v for k, v in want.items())

    return build_atomically(dst, lambda tmp: {**want, **build(tmp, seed)}, is_current)
