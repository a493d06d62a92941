"""URL-valued client metadata (gateway.policy.urls.check_https_url)."""

from __future__ import annotations

import pytest

from gateway.policy.urls import check_https_url

HTTPS = "must be an https:// URL"
HOST = "must name a host"
USERINFO = "must not carry user information"
CHARS = "contains whitespace, control characters or a backslash"
LONG = "is longer than 2000 characters"

CASES = [
    # accepted
    ("https://example.com/jwks.json", None),
    ("https://example.com", None),
    ("HTTPS://EXAMPLE.COM/", None),
    ("https://example.com:8443/x", None),
    ("https://example.com:443/x", None),
    ("https://[::1]/x", None),
    ("https://[2001:db8::1]:8443/x", None),
    ("https://bücher.example/logo.png", None),
    ("https://example.com/x?y=1&z=2", None),
    ("https://example.com/a@b", None),  # '@' in the path is not userinfo
    ("https://example.com/" + "a" * 1980, None),  # exactly 2000 characters
    # not https
    ("http://example.com/jwks.json", HTTPS),
    ("ftp://example.com/", HTTPS),
    ("javascript:alert(1)", HTTPS),
    ("//example.com/x", HTTPS),
    ("example.com/x", HTTPS),
    ("", HTTPS),
    ("https:example.com", HTTPS),
    # no host
    ("https://", HOST),
    ("https:///jwks.json", HOST),
    ("https://:443/x", HOST),
    ("https://?x", HOST),
    # userinfo
    ("https://user@example.com/", USERINFO),
    ("https://user:secret@example.com/", USERINFO),
    ("https://example.com@evil.example/", USERINFO),
    # spaces, controls, backslash
    ("https://exa mple.com/", CHARS),
    (" https://example.com/", CHARS),
    ("https://example.com/\t", CHARS),
    ("https://example.com/\x00", CHARS),
    ("https://example.com/\r\nX-Injected: 1", CHARS),
    ("https://example.com/\x7f", CHARS),
    ("https://example.com/\x85", CHARS),  # C1 control
    ("https://example.com/\u00a0", CHARS),  # no-break space
    ("https://example.com/\u2028", CHARS),  # line separator
    ("https://example.com\\@evil.example/", CHARS),
    # too long
    ("https://example.com/" + "a" * 1981, LONG),
    ("https://example.com/ " + "a" * 3000, LONG),  # length is checked first
]


@pytest.mark.parametrize(("value", "problem"), CASES, ids=[repr(v[:50]) for v, _ in CASES])
def test_check_https_url(value: str, problem: str | None) -> None:
    assert check_https_url(value) == problem


@pytest.mark.parametrize(
    "value",
    [
        "https://example.com:abc/jwks.json",
        "https://good.example%40evil.example/",
        "https://example.com/\u200b",
    ],
)
def test_odd_authorities_and_invisible_characters_are_refused(value: str) -> None:
    assert check_https_url(value) is not None
