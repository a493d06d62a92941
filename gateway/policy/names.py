"""Comparing client names the way a person reading a consent screen would.

``client_name`` is chosen by the caller and shown to users, so ``ClaudeAI``, ``claudeai ``,
its fullwidth form and ``claude\u200bai`` (with a zero-width space) must all read as
the same name.  Names are NFKC-normalized, stripped of format characters (Unicode
category Cf), whitespace-collapsed, trimmed and case-folded before any comparison.
"""

from __future__ import annotations

import fnmatch
import re
import unicodedata


def normalize_name(name: str) -> str:
    text = unicodedata.normalize("NFKC", name)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return " ".join(text.split()).casefold()


def compile_name_glob(pattern: str) -> re.Pattern[str]:
    """A glob (``*``, ``?``, ``[...]``) matched against the whole normalized name."""
    return re.compile(fnmatch.translate(normalize_name(pattern)), re.DOTALL)
