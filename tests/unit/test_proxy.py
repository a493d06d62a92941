"""Unit tests for the pure parts of gateway.proxy: upstream URLs and error responses."""

from __future__ import annotations

import json

import pytest
from yarl import URL

from gateway.errors import (
    BadGateway,
    InvalidClientMetadata,
    InvalidToken,
    MethodNotAllowed,
    OAuthError,
    RateLimited,
)
from gateway.proxy import UpstreamClient, error_response
from gateway.settings import Upstream


def rel(path: str, query: str = "") -> URL:
    """A request target as aiohttp builds ``request.rel_url``: encoded, kept as sent."""
    return URL.build(path=path, query_string=query, encoded=True)


@pytest.mark.parametrize(
    ("base", "target", "expected"),
    [
        ("http://127.0.0.1:3000", rel("/reg"), "http://127.0.0.1:3000/reg"),
        ("http://127.0.0.1:3000/", rel("/reg"), "http://127.0.0.1:3000/reg"),
        ("https://as.example/oidc", rel("/reg"), "https://as.example/oidc/reg"),
        ("https://as.example/oidc/", rel("/reg"), "https://as.example/oidc/reg"),
        (
            "http://as:3000",
            rel("/auth", "a=1&b=%2F&c=%20+x&d"),
            "http://as:3000/auth?a=1&b=%2F&c=%20+x&d",
        ),
        ("http://as:3000", rel("/a%2Fb/%7Euser"), "http://as:3000/a%2Fb/%7Euser"),
        ("http://as:3000", rel("/x/../reg"), "http://as:3000/x/../reg"),
        ("http://as:3000", rel("//evil.example/x"), "http://as:3000//evil.example/x"),
        ("http://as:3000", rel("/@evil.example"), "http://as:3000/@evil.example"),
        ("http://as:3000", rel("/"), "http://as:3000/"),
        ("http://[::1]:3000", rel("/reg"), "http://[::1]:3000/reg"),
    ],
    ids=[
        "no-prefix",
        "root-prefix",
        "prefix",
        "prefix-with-slash",
        "query-kept-byte-for-byte",
        "encoded-path-kept",
        "dot-segments-kept",
        "double-slash-stays-on-upstream-host",
        "at-sign-stays-on-upstream-host",
        "root",
        "ipv6-upstream",
    ],
)
def test_url_for(base: str, target: URL, expected: str) -> None:
    client = UpstreamClient(Upstream(url=URL(base)))
    url = client.url_for(target)
    assert str(url) == expected
    assert url.host == URL(base).host
    assert url.port == URL(base).port


def test_url_for_keeps_the_upstream_origin_whatever_the_target() -> None:
    client = UpstreamClient(Upstream(url=URL("https://as.example:8443/base")))
    for target in (rel("//evil.example"), rel("/%2F%2Fevil.example"), rel("/\\evil.example")):
        url = client.url_for(target)
        assert (url.scheme, url.host, url.port) == ("https", "as.example", 8443)
        assert url.raw_path.startswith("/base/")


def test_session_before_start_is_an_error() -> None:
    client = UpstreamClient(Upstream(url=URL("http://as:3000")))
    with pytest.raises(RuntimeError, match="start"):
        _ = client.session


@pytest.mark.parametrize(
    ("error", "status", "code", "extra"),
    [
        (InvalidClientMetadata("bad field", rule="r"), 400, "invalid_client_metadata", {}),
        (
            InvalidToken("no token", rule="r"),
            401,
            "invalid_token",
            {"WWW-Authenticate": 'Bearer error="invalid_token"'},
        ),
        (RateLimited("slow", rule="r", retry_after=7), 429, "rate_limited", {"Retry-After": "7"}),
        (
            MethodNotAllowed("use POST", rule="r", allow="POST, OPTIONS"),
            405,
            "invalid_request",
            {"Allow": "POST, OPTIONS"},
        ),
        (BadGateway("down", rule="r"), 502, "temporarily_unavailable", {}),
    ],
    ids=["invalid-metadata", "invalid-token", "rate-limited", "method-not-allowed", "bad-gateway"],
)
def test_error_response(error: OAuthError, status: int, code: str, extra: dict[str, str]) -> None:
    response = error_response(error, "rid-42")
    assert response.status == status
    assert json.loads(response.body) == {
        "error": code,
        "error_description": error.description,
    }
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    assert response.headers["X-Request-ID"] == "rid-42"
    for name, value in extra.items():
        assert response.headers[name] == value


def test_error_response_does_not_change_the_error() -> None:
    error = InvalidClientMetadata("bad", rule="r")
    error_response(error, "rid-1")
    assert "X-Request-ID" not in error.headers()
