"""Unit tests for gateway.http.cors: preflights and the CORS headers of guarded answers."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from gateway.config.settings import Cors
from gateway.http.cors import CorsPolicy, add_vary

ORIGIN = "https://inspector.example"
POLICY = CorsPolicy(Cors(allow_origins=(ORIGIN,), max_age=600))


def preflight(methods: tuple[str, ...], origin: str = ORIGIN, asked: str = "POST"):
    request = make_mocked_request(
        "OPTIONS",
        "/reg",
        headers={"Origin": origin, "Access-Control-Request-Method": asked},
    )
    return POLICY.preflight(request, methods, "rid")


def test_an_allowed_origin_gets_the_methods_of_the_path() -> None:
    answer = preflight(("POST",))
    assert answer.status == 204
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert answer.headers["Access-Control-Allow-Methods"] == "POST"
    assert "MCP-Protocol-Version" in answer.headers["Access-Control-Allow-Headers"]
    assert answer.headers["Access-Control-Max-Age"] == "600"
    assert answer.headers["Allow"] == "POST, OPTIONS"
    assert "Access-Control-Allow-Credentials" not in answer.headers


@pytest.mark.parametrize(
    ("origin", "asked"), [("https://evil.example", "POST"), (ORIGIN, "DELETE")]
)
def test_other_origins_and_methods_get_no_cors_headers(origin: str, asked: str) -> None:
    answer = preflight(("POST",), origin, asked)
    assert not [name for name in answer.headers if name.lower().startswith("access-control-")]


def test_a_path_without_methods_allows_options_only() -> None:
    # RFC 9110 §5.6.1: a list has no empty elements.
    answer = preflight((), asked="GET")
    assert answer.headers["Allow"] == "OPTIONS"
    assert "Access-Control-Allow-Origin" not in answer.headers


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([], ["Origin"]),
        (["Accept-Encoding"], ["Accept-Encoding, Origin"]),
        (["Accept-Encoding", "Cookie"], ["Accept-Encoding, Cookie, Origin"]),
        (["accept-encoding, origin"], ["accept-encoding, origin"]),
        (["*"], ["*"]),
    ],
)
def test_vary_keeps_what_the_upstream_listed(lines: list[str], expected: list[str]) -> None:
    headers: CIMultiDict[str] = CIMultiDict(("Vary", line) for line in lines)
    add_vary(headers, "Origin")
    assert headers.getall("Vary", []) == expected
