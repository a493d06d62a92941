"""Unit tests for gateway.http.responses: wire errors and the gateway's own JSON."""

from __future__ import annotations

import json

import pytest

from gateway.errors import (
    BadGateway,
    InvalidClientMetadata,
    InvalidToken,
    MethodNotAllowed,
    OAuthError,
    RateLimited,
)
from gateway.http.responses import SERVER, error_response, json_response


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
        "error_description": f"{error.description} (rule r)",
    }
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    assert response.headers["X-Request-ID"] == "rid-42"
    assert response.headers["Server"] == SERVER == "dcr-gateway"
    for name, value in extra.items():
        assert response.headers[name] == value


def test_error_response_does_not_change_the_error() -> None:
    error = InvalidClientMetadata("bad", rule="r")
    error_response(error, "rid-1")
    assert "X-Request-ID" not in error.headers()


def test_json_response_is_never_cached_and_names_the_gateway() -> None:
    response = json_response(200, {"status": "ok"}, "rid-7")
    assert json.loads(response.body) == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Server"] == "dcr-gateway"
    assert response.headers["X-Request-ID"] == "rid-7"
