"""BM25 baseline with tokenisation that works for every LAReQA language.

Words for space-delimited scripts; character bigrams for scripts written without spaces
(Han, Thai, Japanese kana), the usual lexical baseline for them, with no segmenter to install.
"""

from __future__ import annotations

import re

import numpy as np

_WORD = re.compile(r"\w+", re.UNICODE)
_UNSPACED = re.compile(r"[\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    for word in _WORD.findall(text.lower()):
        if _UNSPACED.search(word):
            chars = list(word)
            tokens.extend(chars if len(chars) == 1 else [a + b for a, b in zip(chars, chars[1:])])
        else:
            tokens.append(word)
    return tokens


class BM25Scorer:
    """Scores queries against one BM25 index over the whole (multilingual) pool."""

    def __init__(self, candidates: list[str]):
        import bm25s

        self.n = len(candidates)
        self.index = bm25s.BM25()
        self.index.index([tokenize(t) or [""] for t in candidates], show_progress=False)

    def scores(self, queries: list[str]) -> np.ndarray:
        out = np.zeros((len(queries), self.n), dtype=np.float32)
        for i, q in enumerate(queries):
            tokens = [t for t in tokenize(q) if t in self.index.vocab_dict]
            if tokens:
                out[i] = self.index.get_scores(tokens)
        return out
