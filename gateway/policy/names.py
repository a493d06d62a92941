"""Comparing client names the way a person reading a consent screen would.

``client_name`` is chosen by the caller and shown to users, so ``ClaudeAI``, ``claudeai ``,
its fullwidth form, ``claude`` + zero-width space + ``ai`` and ``clаudeai`` with a Cyrillic
``а`` must all read as the same name.  Names are NFKC-normalized, stripped of control and
format characters (Unicode categories Cc and Cf), mapped through a small table of
Latin look-alikes from other scripts (after Unicode TR #39's confusables), whitespace-
collapsed, trimmed and case-folded before any comparison.

Names carrying bidirectional controls are refused outright (:func:`has_hidden_characters`):
a right-to-left override makes ``iaedualc`` display as ``claudeai``, and no normalization
can recover what the reader will see.
"""

from __future__ import annotations

import fnmatch
import re
import unicodedata

#: Letters of other scripts that render like a Latin letter (Cyrillic, Greek, Armenian,
#: and a few symbols), from the Unicode confusables data (TR #39), lower case only since
#: names are case-folded first.
_LOOKALIKES = str.maketrans(
    {
        "а": "a", "ɑ": "a", "α": "a",
        "в": "b", "ь": "b",
        "с": "c", "ϲ": "c",
        "ԁ": "d",
        "е": "e", "ё": "e", "ε": "e",
        "ɡ": "g",
        "һ": "h", "н": "h",
        "і": "i", "ı": "i", "ι": "i", "ӏ": "l",
        "ј": "j",
        "к": "k", "κ": "k",
        "ⅼ": "l",
        "м": "m",
        "п": "n", "ո": "n",
        "о": "o", "ο": "o", "օ": "o", "σ": "o",
        "р": "p", "ρ": "p",
        "ԛ": "q",
        "г": "r",
        "ѕ": "s",
        "т": "t", "τ": "t",
        "υ": "u", "ս": "u",
        "ν": "v", "ѵ": "v",
        "ԝ": "w", "ѡ": "w",
        "х": "x", "χ": "x",
        "у": "y", "γ": "y",
        "ᴢ": "z",
    }
)  # fmt: skip
_BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def has_hidden_characters(name: str) -> bool:
    """True when a name carries bidirectional controls or control characters, which make
    what a consent screen shows differ from the characters sent."""
    return any(
        ch in _BIDI_CONTROLS or (unicodedata.category(ch) == "Cc" and ch not in "\t\n\r")
        for ch in name
    )


def normalize_name(name: str) -> str:
    text = unicodedata.normalize("NFKC", name)
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf"))
    text = " ".join(text.split()).casefold()
    return text.translate(_LOOKALIKES)


def compile_name_glob(pattern: str) -> re.Pattern[str]:
    """A glob (``*``, ``?``, ``[...]``) matched against the whole normalized name."""
    return re.compile(fnmatch.translate(normalize_name(pattern)), re.DOTALL)
