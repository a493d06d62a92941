"""Unit tests for gateway.uri.paths: the registration path however it is spelled."""

from __future__ import annotations

import pytest

from gateway.uri.paths import PathMatcher, canonical_path

# Every spelling that an upstream router may route to /reg must be guarded.
SPELLINGS_OF_REG = {
    "plain": "/reg",
    "upper-case": "/REG",
    "mixed-case": "/Reg",
    "trailing-slash": "/reg/",
    "double-leading-slash": "//reg",
    "many-slashes": "///reg//",
    "dot-segment": "/./reg",
    "dot-dot-segment": "/x/../reg",
    "dot-dot-above-root": "/../reg",
    "trailing-dot": "/reg/.",
    "percent-encoded-letter": "/%72eg",
    "percent-encoded-upper-hex": "/%52EG",
    "double-encoded": "/%2572eg",
    "triple-encoded": "/%252572eg",
    "matrix-parameter": "/reg;jsessionid=1",
    "matrix-parameter-then-slash": "/reg;x=1/",
    "encoded-slash": "/%2Freg",
    "encoded-trailing-slash": "/reg%2F",
    "encoded-dot-segment": "/%2e/reg",
    "encoded-dot-dot": "/x/%2e%2e/reg",
    "double-encoded-dot-dot": "/x/%252e%252e/reg",
    "dot-dot-with-parameter": "/x/..;/reg",
    "backslash": "\\reg",
    "encoded-backslash": "/x%5C..%5Creg",
    "encoded-semicolon": "/reg%3Bx=1",
    "encoded-space-after": "/reg%20",
}

NOT_REG = {
    "sub-resource": "/reg/abc",
    "longer-name": "/register",
    "prefix": "/re",
    "root": "/",
    "empty": "",
    "other": "/token",
    "dot-dot-leaves": "/reg/..",
    "suffix-in-segment": "/reg.json",
    "encoded-question-mark": "/reg%3F",
    "nul-byte": "/reg%00",
    "quadruple-encoded": "/%25252572eg",
}


@pytest.mark.parametrize("raw", SPELLINGS_OF_REG.values(), ids=SPELLINGS_OF_REG.keys())
def test_spellings_canonicalise_to_reg(raw: str) -> None:
    assert canonical_path(raw) == "/reg"


@pytest.mark.parametrize("raw", SPELLINGS_OF_REG.values(), ids=SPELLINGS_OF_REG.keys())
def test_matcher_guards_every_spelling(raw: str) -> None:
    assert raw in PathMatcher(["/reg"])


@pytest.mark.parametrize("raw", NOT_REG.values(), ids=NOT_REG.keys())
def test_matcher_does_not_guard_other_paths(raw: str) -> None:
    assert raw not in PathMatcher(["/reg"])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/", "/"),
        ("", "/"),
        ("/reg/abc", "/reg/abc"),
        ("/A/B/../C", "/a/c"),
        ("/oidc//Register/", "/oidc/register"),
        ("/a/./b/./", "/a/b"),
        ("/a;p=1/b;q=2", "/a/b"),
        ("/%61%2F%62", "/a/b"),
        ("/STRASSE", "/strasse"),
        ("/reg/..", "/"),
    ],
    ids=[
        "root",
        "empty",
        "sub-resource",
        "dot-dot-in-middle",
        "empty-segments",
        "dot-segments",
        "parameters-on-every-segment",
        "encoded-slash-splits-segments",
        "case-folded",
        "dot-dot-at-end",
    ],
)
def test_canonical_path(raw: str, expected: str) -> None:
    assert canonical_path(raw) == expected


def test_invalid_percent_escape_does_not_crash() -> None:
    assert canonical_path("/reg%ZZ") == "/reg%zz"
    assert canonical_path("/reg%") == "/reg%"
    assert canonical_path("/r%C3eg") == "/r\udcc3eg"


@pytest.mark.parametrize(
    ("guarded", "raw"),
    [
        (["/oidc/reg"], "/OIDC//reg/"),
        (["/oidc/reg"], "/oidc/x/../reg"),
        (["/REG/"], "/reg"),
        (["/reg", "/oidc/register"], "/oidc/%72egister"),
        (["/reg", "/oidc/register"], "/reg;x"),
    ],
    ids=[
        "prefixed-path",
        "prefixed-dot-dot",
        "guarded-path-is-canonicalised-too",
        "second-of-several",
        "first-of-several",
    ],
)
def test_matcher_with_other_guarded_paths(guarded: list[str], raw: str) -> None:
    assert raw in PathMatcher(guarded)


def test_matcher_keeps_the_configured_paths() -> None:
    matcher = PathMatcher(["/reg", "/OIDC/register/"])
    assert matcher.paths == ("/reg", "/OIDC/register/")


@pytest.mark.parametrize(
    ("paths", "truthy"),
    [([], False), (["/reg"], True), (["/reg", "/REG/"], True)],
    ids=["empty", "one", "duplicates"],
)
def test_matcher_truthiness(paths: list[str], truthy: bool) -> None:
    assert bool(PathMatcher(paths)) is truthy


def test_empty_matcher_matches_nothing() -> None:
    matcher = PathMatcher([])
    assert "/reg" not in matcher
    assert "/" not in matcher
