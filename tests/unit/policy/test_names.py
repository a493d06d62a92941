"""Client-name normalization and deny globs (gateway.policy.names)."""

from __future__ import annotations

import pytest

from gateway.policy.names import compile_name_glob, normalize_name

NORMALIZE = [
    # case
    ("ClaudeAI", "claudeai"),
    ("CLAUDEAI", "claudeai"),
    ("Straße", "strasse"),  # full case folding, not lower()
    # whitespace: trimmed and collapsed, Unicode spaces included
    ("  claudeai  ", "claudeai"),
    ("Claude \t\n  AI", "claude ai"),
    ("\u00a0claudeai\u3000", "claudeai"),  # no-break space, ideographic space
    ("   ", ""),
    ("", ""),
    # NFKC: fullwidth and compatibility forms
    ("\uff43\uff4c\uff41\uff55\uff44\uff45\uff41\uff49", "claudeai"),
    ("\uff23\uff4c\uff41\uff55\uff44\uff45\uff21\uff29", "claudeai"),
    ("ﬁle", "file"),  # ligature
    ("Ⅻ", "xii"),  # roman numeral
    ("e\u0301", "\u00e9"),  # combining accent composed
    # format characters (Cf) removed
    ("claude\u200bai", "claudeai"),  # zero-width space
    ("claude\u200dai", "claudeai"),  # zero-width joiner
    ("claude\u2060ai", "claudeai"),  # word joiner
    ("claude\u00adai", "claudeai"),  # soft hyphen
    ("\ufeffclaudeai", "claudeai"),  # byte order mark
    ("\u202eclaudeai", "claudeai"),  # right-to-left override
    # what stays different
    ("claude ai", "claude ai"),
    ("claude-ai", "claude-ai"),
    ("cl\u0430udeai", "claudeai"),  # Cyrillic a reads as Latin a (TR #39 confusables)
]


@pytest.mark.parametrize(("name", "normalized"), NORMALIZE, ids=[repr(n) for n, _ in NORMALIZE])
def test_normalize_name(name: str, normalized: str) -> None:
    assert normalize_name(name) == normalized


@pytest.mark.parametrize(("name", "_"), NORMALIZE, ids=[repr(n) for n, _ in NORMALIZE])
def test_normalize_name_is_idempotent(name: str, _: str) -> None:
    once = normalize_name(name)
    assert normalize_name(once) == once


GLOBS = [
    # glob, name, matches?
    ("*admin*", "Super ADMIN tool", True),
    ("*admin*", "admin", True),
    ("*admin*", "Administrator", True),
    ("*admin*", "adm1n", False),
    ("*admin*", "ad\u200bmin panel", True),  # zero-width space removed first
    ("*admin*", "\uff21\uff24\uff2d\uff29\uff2e", True),  # fullwidth
    ("*admin*", "line one\nadmin", True),  # newline collapsed; * matches any character
    ("*ADMIN*", "my admin", True),  # the glob is normalized too
    # whole-name matching
    ("admin", "admin", True),
    ("admin", "  Admin ", True),
    ("admin", "admin tool", False),
    ("admin", "the admin", False),
    ("admin*", "the admin", False),
    ("*admin", "admin tool", False),
    # ? and [...]
    ("?dmin", "admin", True),
    ("?dmin", "dmin", False),
    ("[ab]dmin", "Bdmin", True),
    ("[ab]dmin", "cdmin", False),
    ("[!a]dmin", "edmin", True),
    ("[!a]dmin", "admin", False),
    # other characters are literal
    ("a.b", "a.b", True),
    ("a.b", "axb", False),
    ("Test  Bot", "test bot", True),  # whitespace in the glob collapsed like names
    ("(beta)*", "(Beta) client", True),
]


@pytest.mark.parametrize(("glob", "name", "expected"), GLOBS)
def test_compile_name_glob(glob: str, name: str, expected: bool) -> None:
    regex = compile_name_glob(glob)
    assert bool(regex.fullmatch(normalize_name(name))) is expected
    # anchored at the end too, so even a plain match() reads the whole name
    assert bool(regex.match(normalize_name(name))) is expected
