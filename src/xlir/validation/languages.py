"""Language codes (ISO 639-1) and the writing systems their text is expected in.

The script check of the data contract needs, for every language a dataset may hold, the
scripts its letters should come from. ``SCRIPTS`` holds that for about 150 languages; a
configuration can add or override entries (``ValidationConfig.scripts``).

A character's script is read from its Unicode name (``LATIN SMALL LETTER A`` -> Latin,
``CJK UNIFIED IDEOGRAPH-4E2D`` -> Han), after NFKC normalisation (so full-width Latin counts as
Latin). Only letters count (Unicode category L*): digits, punctuation and combining marks
(Devanagari vowel signs, Thai tone marks) are neither evidence for nor against a script.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

ISO_639_1: frozenset[str] = frozenset(
    """aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv
    cy da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht
    hu hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la
    lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj
    om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr ss st su sv
    sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu""".split()
)
"""Every two-letter ISO 639-1 language code."""

_LATIN = """aa af ak an ay az bi bm br bs ca ch co cs cy da de ee en eo es et eu ff fi fj fo fr fy
ga gd gl gn gv ha ho hr ht hu hz ia id ie ig ik io is it jv kg ki kj kl kr kw la lb lg li ln lt lu
lv mg mh mi ms mt na nb nd ng nl nn no nr nv ny oc om pl pt qu rm rn ro rw sc se sg sk sl sm sn so
sq ss st su sv sw tk tl tn to tr ts tw ty uz ve vi vo wa wo xh yo za zu""".split()

SCRIPTS: dict[str, tuple[str, ...]] = {
    **{code: ("Latin",) for code in _LATIN},
    **{code: ("Cyrillic",) for code in "ab av ba be bg ce cu cv kk kv ky mk mn os ru tg tt uk".split()},
    **{code: ("Arabic",) for code in "ar fa ks ps sd ug ur".split()},
    "ku": ("Latin", "Arabic"),
    "sr": ("Cyrillic", "Latin"),
    "he": ("Hebrew",),
    "yi": ("Hebrew",),
    "el": ("Greek",),
    "hy": ("Armenian",),
    "ka": ("Georgian",),
    **{code: ("Devanagari",) for code in "hi mr ne sa pi bh".split()},
    "bn": ("Bengali",),
    "as": ("Bengali",),
    "pa": ("Gurmukhi",),
    "gu": ("Gujarati",),
    "or": ("Oriya",),
    "ta": ("Tamil",),
    "te": ("Telugu",),
    "kn": ("Kannada",),
    "ml": ("Malayalam",),
    "si": ("Sinhala",),
    "th": ("Thai",),
    "lo": ("Lao",),
    "my": ("Myanmar",),
    "km": ("Khmer",),
    "bo": ("Tibetan",),
    "dz": ("Tibetan",),
    "am": ("Ethiopic",),
    "ti": ("Ethiopic",),
    "dv": ("Thaana",),
    "zh": ("Han",),
    "ja": ("Han", "Hiragana", "Katakana"),
    "ko": ("Hangul", "Han"),
    "ii": ("Yi",),
    "iu": ("Canadian_Aboriginal", "Latin"),
    "cr": ("Canadian_Aboriginal", "Latin"),
    "oj": ("Canadian_Aboriginal", "Latin"),
}
"""Expected scripts per ISO 639-1 code (a language written in several lists them all)."""

_NAME_PREFIX = {
    "LATIN": "Latin", "CYRILLIC": "Cyrillic", "ARABIC": "Arabic", "HEBREW": "Hebrew",
    "GREEK": "Greek", "ARMENIAN": "Armenian", "GEORGIAN": "Georgian", "DEVANAGARI": "Devanagari",
    "BENGALI": "Bengali", "GURMUKHI": "Gurmukhi", "GUJARATI": "Gujarati", "ORIYA": "Oriya",
    "TAMIL": "Tamil", "TELUGU": "Telugu", "KANNADA": "Kannada", "MALAYALAM": "Malayalam",
    "SINHALA": "Sinhala", "THAI": "Thai", "LAO": "Lao", "MYANMAR": "Myanmar", "KHMER": "Khmer",
    "TIBETAN": "Tibetan", "ETHIOPIC": "Ethiopic", "THAANA": "Thaana", "CJK": "Han",
    "HIRAGANA": "Hiragana", "KATAKANA": "Katakana", "KATAKANA-HIRAGANA": "Katakana",
    "HANGUL": "Hangul", "YI": "Yi", "CANADIAN": "Canadian_Aboriginal",
}

KNOWN_SCRIPTS: frozenset[str] = frozenset(_NAME_PREFIX.values())
"""Script names a configuration may use."""


@lru_cache(maxsize=None)
def script_of(char: str) -> str | None:
    """The script of one letter (``"Other"`` when unknown), or None for a non-letter."""
    if not unicodedata.category(char).startswith("L"):
        return None
    name = unicodedata.name(char, "")
    return _NAME_PREFIX.get(name.split(" ", 1)[0], "Other")


def script_share(text: str, expected: frozenset[str] | tuple[str, ...]) -> float:
    """Share of the letters of ``text`` written in one of the ``expected`` scripts.

    NaN when the text holds no letter at all (a number, punctuation): such text says nothing
    about its language, and other checks (length, blank) judge it.
    """
    letters = hits = 0
    for char in unicodedata.normalize("NFKC", text):
        script = script_of(char)
        if script is None:
            continue
        letters += 1
        hits += script in expected
    return hits / letters if letters else float("nan")


def language_from_name(stem: str, known: frozenset[str] | set[str] = ISO_639_1) -> str | None:
    """The language code a file name states: ``de`` or ``mlqa-train.de`` -> ``de``.

    The whole stem when it is a code, else its last token (split on ``-_.`` and spaces) when
    that is a code; None otherwise (``answers_to_check`` does not state Tongan).
    """
    if stem in known:
        return stem
    tokens = stem.replace("-", " ").replace("_", " ").replace(".", " ").split()
    return tokens[-1] if tokens and tokens[-1] in known else None
