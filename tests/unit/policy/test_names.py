"""Client names and software ids as a reader sees them (gateway.policy.names)."""

from __future__ import annotations

import pytest

from gateway.policy.names import (
    MAX_NAME_LENGTH,
    claim_keys,
    claims,
    compile_name_glob,
    hidden_character,
    invalid_name,
    invalid_software_id,
    name_matches,
    prefixes,
    software_id_key,
    words,
)
from gateway.unicode.confusables import identity_keys

SAME = [
    # case, whitespace
    ("ClaudeAI", "claudeai"),
    ("CLAUDEAI", "claudeai"),
    ("  claudeai  ", "claudeai"),
    ("Claude \t\n  AI", "claude ai"),
    ("\u00a0claudeai\u3000", "claudeai"),
    # NFKC: fullwidth and compatibility forms
    ("\uff43\uff4c\uff41\uff55\uff44\uff45\uff41\uff49", "claudeai"),
    ("\uff23\uff4c\uff41\uff55\uff44\uff45\uff21\uff29", "claudeai"),
    # confusables (UTS #39 skeleton), whatever the script
    ("cl\u0430udeai", "claudeai"),  # Cyrillic a
    ("Curs\u2c9fr", "Cursor"),  # Coptic small o
    ("Curs0r", "Cursor"),  # digit zero's prototype is O
    ("ChatG\u0420\u0422", "ChatGPT"),  # Cyrillic Er, Te
    ("\u0421hatGPT", "ChatGPT"),  # Cyrillic Es
    ("OpenAl", "OpenAI"),  # a lower-case L for a capital I
    ("ADMIN", "admin"),
]


def _confusable(a: str, b: str) -> bool:
    return bool(set(identity_keys(a)) & set(identity_keys(b)))


@pytest.mark.parametrize(("name", "other"), SAME, ids=[repr(n) for n, _ in SAME])
def test_confusable_names_share_a_key(name: str, other: str) -> None:
    assert _confusable(name, other)


@pytest.mark.parametrize(
    ("name", "other"),
    [("claudeai", "claude ai"), ("Cha\u0165GPT", "ChatGPT"), ("Claude", "Claudette")],
)
def test_different_names_do_not(name: str, other: str) -> None:
    assert not _confusable(name, other)


@pytest.mark.parametrize(("name", "_"), SAME, ids=[repr(n) for n, _ in SAME])
def test_identity_keys_are_stable(name: str, _: str) -> None:
    for key in identity_keys(name):
        assert key in identity_keys(key)


HIDDEN = [
    "claude\u034fai",  # combining grapheme joiner (Mn)
    "claude\u200bai",  # zero-width space
    "claude\u200dai",  # zero-width joiner
    "claude\u2060ai",  # word joiner
    "claude\u00adai",  # soft hyphen
    "\ufeffclaudeai",  # byte order mark
    "claude\ufe0fai",  # variation selector 16
    "claude\U000e0100ai",  # variation selector 17
    "claude\u180bai",  # Mongolian free variation selector one
    "claude\u180fai",  # Mongolian free variation selector four
    "claude\u17b4ai",  # Khmer vowel inherent aq
    "claude\u17b5ai",  # Khmer vowel inherent aa
    "claude\u115fai",  # Hangul choseong filler
    "claude\u1160ai",  # Hangul jungseong filler
    "claude\u3164ai",  # Hangul filler
    "claude\uffa0ai",  # halfwidth Hangul filler
    "claude\U000e0041ai",  # tag latin capital a
    "\u202eiaedualc",  # right-to-left override
    "claude\u2066ai\u2069",  # isolates
    "claude\u061cai",  # Arabic letter mark
    "claude\x00ai",  # NUL
    "claude\nai",  # newline
    "claude\x7fai",  # DEL
    "claude\u0085ai",  # NEL (C1)
    "claude\u2028ai",  # line separator
]


@pytest.mark.parametrize(
    "name",
    HIDDEN,
    ids=[
        f"U+{ord(c):04X}"
        for c in [
            next(ch for ch in n if ch not in "claudeai" and ch not in "iaedulc") for n in HIDDEN
        ]
    ],
)
def test_hidden_characters_are_named(name: str) -> None:
    problem = hidden_character(name)
    assert problem is not None
    assert "U+" in problem and "position" in problem


@pytest.mark.parametrize(
    "name", ["Claude", "Visual Studio Code", "Caf\u00e9 client", "日本語クライアント", "a b c"]
)
def test_ordinary_names_hide_nothing(name: str) -> None:
    assert hidden_character(name) is None


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("x" * (MAX_NAME_LENGTH + 1), "characters long"),
        ("name\ue000", "private-use"),
        ("name\U000f0000", "private-use"),
        ("name\U0001fa89", "unassigned"),  # assigned in Unicode 16, unknown to the gateway
    ],
)
def test_invalid_names(name: str, fragment: str) -> None:
    problem = invalid_name(name)
    assert problem is not None and fragment in problem


def test_a_name_of_the_maximum_length_is_valid() -> None:
    assert invalid_name("x" * MAX_NAME_LENGTH) is None


@pytest.mark.parametrize(
    "value",
    [
        "2e6dc280-f3c3-4e01-99a7-8181dbd1d23d",
        "claude-desktop",
        "com.example.app/1.0",
        "A" * 255,
    ],
)
def test_valid_software_ids(value: str) -> None:
    assert invalid_software_id(value) is None


@pytest.mark.parametrize(
    "value",
    [
        "",
        "a" * 256,
        "2e6dc280-f3c3-4e01-99a7-8181dbd1d23d\u200b",  # zero-width space
        "2e6dc280-f3c3-4e01-99a7-8181dbd1d23\u00ad",  # soft hyphen
        "\uff12e6dc280-f3c3-4e01-99a7-8181dbd1d23d",  # fullwidth digit
        "2\u0435\u0431dc280-f3c3-4e01-99a7-8181dbd1d23d",  # Cyrillic letters
        "with space",
        "tab\there",
        "new\nline",
    ],
)
def test_software_id_look_alikes_are_refused(value: str) -> None:
    assert invalid_software_id(value) is not None


def test_uuids_compare_case_insensitively_and_nothing_else_does() -> None:
    upper = "2E6DC280-F3C3-4E01-99A7-8181DBD1D23D"
    assert software_id_key(upper) == software_id_key(upper.lower())
    assert software_id_key("Claude-Desktop") != software_id_key("claude-desktop")
    assert software_id_key("{2e6dc280-f3c3-4e01-99a7-8181dbd1d23d}") == (
        "{2e6dc280-f3c3-4e01-99a7-8181dbd1d23d}"
    )


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("claude code (rny-server)", ["claude", "code", "rny", "server"]),
        ("chat-gpt", ["chat", "gpt"]),
        ("", []),
        ("  ", []),
        ("cla\u0300ude", ["cl\u00e0ude"]),  # a combining mark stays inside its word
    ],
)
def test_words(key: str, expected: list[str]) -> None:
    assert words(key) == expected


PROTECTED = {
    key: n
    for n in ("Claude", "Claude Code", "ChatGPT", "OpenAI", "Anthropic", "Visual Studio Code")
    for key in claim_keys(n)
}
STARTS = prefixes(PROTECTED)


@pytest.mark.parametrize(
    ("name", "claimed"),
    [
        ("Claude", ["Claude"]),
        ("claudeai", []),  # a different word: claudeai is listed as its own client name
        ("Claude Desktop", ["Claude"]),
        ("Anthropic Claude", ["Anthropic", "Claude"]),
        ("OpenAI ChatGPT", ["OpenAI", "ChatGPT"]),
        ("Chat GPT", ["ChatGPT"]),
        ("Chat-GPT helper", ["ChatGPT"]),
        ("Claude Code (my-server)", ["Claude Code"]),  # the longer claim only
        ("ClaudeCode", ["Claude Code"]),
        ("Visual Studio Code - Insiders", ["Visual Studio Code"]),
        ("MyChatGPT", []),
        ("Claudette", []),
        ("My agent", []),
        ("C\u029faude", ["Claude"]),  # a small capital L reads as L
        ("\uff23\uff4c\uff41\uff55\uff44\uff45 Desktop", ["Claude"]),
        ("Cl\u0430ude for Work", ["Claude"]),
    ],
)
def test_claims(name: str, claimed: list[str]) -> None:
    found = claims(name, PROTECTED, STARTS)
    assert list(dict.fromkeys(PROTECTED[c.key] for c in found)) == claimed


def test_claims_cost_stays_linear_for_long_names() -> None:
    name = " ".join(["word"] * 128)
    assert claims(name, PROTECTED, STARTS) == []


GLOBS = [
    # glob, name, matches?
    ("*admin*", "Super ADMIN tool", True),
    ("*admin*", "admin", True),
    ("*admin*", "Administrator", True),
    ("*admin*", "Adm\u0269n console", True),  # U+0269 LATIN SMALL LETTER IOTA
    ("*admin*", "\uff21\uff24\uff2d\uff29\uff2e", True),  # fullwidth
    ("*admin*", "adm1n", False),  # digit one looks like l, not like i
    ("*ADMIN*", "my admin", True),  # the glob is keyed too
    # whole-name matching
    ("admin", "admin", True),
    ("admin", "  Admin ", True),
    ("admin", "admin tool", False),
    ("admin*", "the admin", False),
    ("*admin", "admin tool", False),
    # ? and [...]
    ("?dmin", "admin", True),
    ("?dmin", "dmin", False),
    ("[ab]dmin", "bdmin", True),
    ("[ab]dmin", "cdmin", False),
    ("[!a]dmin", "edmin", True),
    # other characters are literal
    ("a.b", "a.b", True),
    ("a.b", "axb", False),
    ("Test  Bot", "test bot", True),
    ("(beta)*", "(Beta) client", True),
]


@pytest.mark.parametrize(("glob", "name", "expected"), GLOBS)
def test_compile_name_glob(glob: str, name: str, expected: bool) -> None:
    assert name_matches(compile_name_glob(glob), name) is expected
