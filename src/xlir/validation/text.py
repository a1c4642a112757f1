"""Well-formed text: characters that no language writes are evidence of corrupt data.

A text field fails when it holds any of:

- a control character other than tab, line feed and carriage return (C0 and C1 controls,
  DEL: binary data read as text, or mojibake such as ``â\\x81„`` for ``⁄``);
- an unpaired surrogate (U+D800..U+DFFF: half of a UTF-16 pair, e.g. ``"\\ud83d"`` in JSON);
- U+FFFD REPLACEMENT CHARACTER (what a decoder writes for bytes it could not decode: the
  original text is lost);
- a private-use character (U+E000..U+F8FF, planes 15 and 16: no meaning outside one program or
  font);
- a noncharacter (U+FDD0..U+FDEF and the last two code points of every plane: reserved as
  never to be text).

Code points merely unassigned in this Python's Unicode table pass: the table lags behind Unicode
(an emoji added last year would otherwise fail a dataset).

Format characters (zero-width joiners and non-joiners, direction marks, soft hyphens), which
Persian, Hindi and Arabic text uses, are fine. ``problem(text)`` names the first bad character.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

ALLOWED_CONTROLS = frozenset("\t\n\r")


def _kind(ch: str) -> str | None:
    code = ord(ch)
    if ch == "\ufffd":
        return "left by a failed decoding: the original text is lost"
    category = unicodedata.category(ch)
    if category == "Cc":
        return None if ch in ALLOWED_CONTROLS else "control character"
    if category == "Cs":
        return "unpaired surrogate"
    if category == "Co":
        return "private-use character"
    if category == "Cn" and (0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE):
        return "noncharacter"
    return None


@lru_cache(maxsize=4096)
def _bad(ch: str) -> bool:
    return _kind(ch) is not None


def problem(text) -> str | None:
    """None for well-formed text (or a non-string: other checks judge types), else what is wrong:
    ``U+0007 (control character) at character 12: '...the text around it...'``."""
    if not isinstance(text, str) or not text:
        return None
    if text.isprintable() and "\ufffd" not in text:  # the common case, in C (U+FFFD is printable)
        return None
    bad = [ch for ch in set(text) if _bad(ch)]
    if not bad:
        return None
    at = min(text.index(ch) for ch in bad)
    ch = text[at]
    name = unicodedata.name(ch, "")
    around = text[max(0, at - 20): at + 21]
    label = f"U+{ord(ch):04X}{' ' + name if name else ''}"
    return f"{label} ({_kind(ch)}) at character {at + 1}: {around!r}"


def first_problem(texts) -> str | None:
    """The first problem among several texts (a list of negatives, the sentences of a paragraph)."""
    if texts is None or isinstance(texts, (str, bytes)):
        return problem(texts)
    try:
        items = list(texts)
    except TypeError:
        return None
    for n, text in enumerate(items):
        found = problem(text)
        if found:
            return f"item {n + 1}: {found}" if len(items) > 1 else found
    return None


__all__ = ["ALLOWED_CONTROLS", "first_problem", "problem"]
