"""Token secrets (gateway.tokens.secrets): making, hashing, reading ``Authorization``."""

from __future__ import annotations

import hashlib

import pytest

from gateway.errors import InvalidToken
from gateway.tokens.secrets import ISSUED_PREFIX, bearer_token, digest, new_token, same


def test_new_tokens_are_random_and_recognisable() -> None:
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50
    assert all(t.startswith(ISSUED_PREFIX) and len(t) >= 40 for t in tokens)


def test_digest_is_sha256() -> None:
    assert digest("abc") == hashlib.sha256(b"abc").digest()
    assert same(digest("abc"), digest("abc")) and not same(digest("abc"), digest("abd"))


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], None),
        (["Bearer abc.DEF-ghi_~+/="], "abc.DEF-ghi_~+/="),
        (["bearer abc"], "abc"),
        (["BEARER   abc  "], "abc"),
    ],
)
def test_bearer_tokens(values: list[str], expected: str | None) -> None:
    assert bearer_token(values) == expected


@pytest.mark.parametrize(
    "values",
    [
        ["Basic dXNlcjpwYXNz"],
        ["Bearer"],
        ["Bearer "],
        ["Bearer a b"],
        ["Bearer abc", "Bearer abc"],
        ["Bearer ab\u00e7"],
        ["Bearer =abc"],
        ["Bearerabc"],
    ],
    ids=[
        "basic",
        "no-token",
        "empty",
        "two-words",
        "two-headers",
        "non-ascii",
        "bad-start",
        "glued",
    ],
)
def test_anything_else_is_malformed(values: list[str]) -> None:
    with pytest.raises(InvalidToken) as refused:
        bearer_token(values)
    assert refused.value.rule == "initial_access_token.malformed"
    assert refused.value.headers()["WWW-Authenticate"] == 'Bearer error="invalid_token"'
