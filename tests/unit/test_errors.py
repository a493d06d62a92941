"""Unit tests for gateway.errors: each wire error against the error table in the README."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import (
    MAX_WIRE_DESCRIPTION,
    NO_STORE_HEADERS,
    AccessDenied,
    BadGateway,
    GatewayTimeout,
    InvalidClientMetadata,
    InvalidRedirectURI,
    InvalidRequest,
    InvalidSoftwareStatement,
    InvalidToken,
    MethodNotAllowed,
    OAuthError,
    PayloadTooLarge,
    RateLimited,
    TemporarilyUnavailable,
    UnapprovedSoftwareStatement,
    UnsupportedMediaType,
    wire_description,
)

# class, extra constructor arguments, status, error code, extra headers (the README error table)
TABLE: list[tuple[type[OAuthError], dict[str, Any], int, str, dict[str, str]]] = [
    (InvalidRedirectURI, {}, 400, "invalid_redirect_uri", {}),
    (InvalidClientMetadata, {}, 400, "invalid_client_metadata", {}),
    (InvalidSoftwareStatement, {}, 400, "invalid_software_statement", {}),
    (UnapprovedSoftwareStatement, {}, 400, "unapproved_software_statement", {}),
    (AccessDenied, {}, 403, "access_denied", {}),
    (
        InvalidToken,
        {},
        401,
        "invalid_token",
        {"WWW-Authenticate": 'Bearer error="invalid_token"'},
    ),
    (RateLimited, {"retry_after": 30}, 429, "rate_limited", {"Retry-After": "30"}),
    (InvalidRequest, {}, 400, "invalid_request", {}),
    (PayloadTooLarge, {}, 413, "invalid_request", {}),
    (UnsupportedMediaType, {}, 415, "invalid_request", {}),
    (
        MethodNotAllowed,
        {"allow": "POST, OPTIONS"},
        405,
        "invalid_request",
        {"Allow": "POST, OPTIONS"},
    ),
    (TemporarilyUnavailable, {}, 503, "temporarily_unavailable", {}),
    (BadGateway, {}, 502, "temporarily_unavailable", {}),
    (GatewayTimeout, {}, 504, "temporarily_unavailable", {}),
]
IDS = [row[0].__name__ for row in TABLE]


@pytest.mark.parametrize(("cls", "kwargs", "status", "code", "extra"), TABLE, ids=IDS)
def test_status_and_error_code(
    cls: type[OAuthError], kwargs: dict[str, Any], status: int, code: str, extra: dict[str, str]
) -> None:
    error = cls("why it was refused", rule="test.rule", **kwargs)
    assert isinstance(error, OAuthError)
    assert error.status == status
    assert error.error == code
    assert error.rule == "test.rule"
    assert error.description == "why it was refused"
    assert str(error) == "why it was refused"


@pytest.mark.parametrize(("cls", "kwargs", "status", "code", "extra"), TABLE, ids=IDS)
def test_body_is_rfc7591_json(
    cls: type[OAuthError], kwargs: dict[str, Any], status: int, code: str, extra: dict[str, str]
) -> None:
    error = cls("why it was refused", rule="test.rule", **kwargs)
    body = json.loads(error.body())
    assert body == {"error": code, "error_description": "why it was refused (rule test.rule)"}


@pytest.mark.parametrize(("cls", "kwargs", "status", "code", "extra"), TABLE, ids=IDS)
def test_headers_are_no_store_json_plus_extras(
    cls: type[OAuthError], kwargs: dict[str, Any], status: int, code: str, extra: dict[str, str]
) -> None:
    error = cls("d", rule="r", **kwargs)
    assert error.headers() == {
        "Content-Type": "application/json",
        "Cache-Control": "no-store",
        "Pragma": "no-cache",
        **extra,
    }


def test_no_store_headers() -> None:
    assert dict(NO_STORE_HEADERS) == {
        "Content-Type": "application/json",
        "Cache-Control": "no-store",
        "Pragma": "no-cache",
    }


def test_headers_are_a_fresh_copy() -> None:
    error = InvalidToken("d", rule="r")
    error.headers()["X-Changed"] = "1"
    assert "X-Changed" not in error.headers()
    assert "X-Changed" not in NO_STORE_HEADERS


def test_extra_headers_on_the_base_class() -> None:
    error = InvalidRequest("d", rule="r", headers={"X-Extra": "1"})
    assert error.headers()["X-Extra"] == "1"
    assert error.headers()["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("retry_after", "header"),
    [(30, "30"), (1, "1"), (0, "1"), (-5, "1"), (3600, "3600")],
    ids=["thirty", "one", "zero-becomes-one", "negative-becomes-one", "an-hour"],
)
def test_retry_after_is_at_least_one_second(retry_after: int, header: str) -> None:
    error = RateLimited("slow down", rule="ratelimit.ip", retry_after=retry_after)
    assert error.headers()["Retry-After"] == header


#: RFC 6749 §5.2: error_description = *( %x20-21 / %x23-5B / %x5D-7E )
WIRE_CHARSET = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")


@pytest.mark.parametrize(
    ("description", "on_the_wire"),
    [
        ('a "quoted" value', "a 'quoted' value"),
        ("line\nbreak", "lineU+000Abreak"),
        ("Caf\u00e9 \u65e5\u672c", "CafU+00E9 U+65E5U+672C"),
        ("back\\slash", "backU+005Cslash"),
        ("RFC 7591 \u00a73.2.2", "RFC 7591 section 3.2.2"),
        ("claude\u034fai", "claudeU+034Fai"),
        ("tab\there\x7f", "tabU+0009hereU+007F"),
        ("plain text, (ok) [ok] {ok} ~ok~", "plain text, (ok) [ok] {ok} ~ok~"),
    ],
    ids=["quotes", "newline", "unicode", "backslash", "section", "cgj", "controls", "plain"],
)
def test_wire_description_stays_in_the_rfc_6749_character_set(
    description: str, on_the_wire: str
) -> None:
    error = InvalidClientMetadata(description, rule="r")
    body = error.body()
    assert body.isascii()
    sent = json.loads(body)["error_description"]
    assert sent == f"{on_the_wire} (rule r)"
    assert on_the_wire == wire_description(description)
    assert WIRE_CHARSET.fullmatch(sent)
    assert error.description == description  # the audit event keeps the whole text


def test_wire_description_is_bounded() -> None:
    sent = wire_description("x" * 5000)
    assert len(sent) == MAX_WIRE_DESCRIPTION
    assert sent.endswith("...")


@given(st.text())
def test_any_description_is_wire_safe(text: str) -> None:
    assert WIRE_CHARSET.fullmatch(wire_description(text))


@pytest.mark.parametrize(
    ("child", "parent"),
    [
        (BadGateway, TemporarilyUnavailable),
        (GatewayTimeout, TemporarilyUnavailable),
        (InvalidToken, OAuthError),
        (PayloadTooLarge, OAuthError),
    ],
    ids=["bad-gateway", "gateway-timeout", "invalid-token", "payload-too-large"],
)
def test_hierarchy(child: type[OAuthError], parent: type[OAuthError]) -> None:
    assert issubclass(child, parent)


def test_repr_names_class_rule_and_description() -> None:
    error = AccessDenied("registration is closed", rule="policy.closed")
    assert repr(error) == "AccessDenied('policy.closed', 'registration is closed')"


def test_no_error_answers_500() -> None:
    def subclasses(cls: type[OAuthError]) -> list[type[OAuthError]]:
        return [cls, *(s for sub in cls.__subclasses__() for s in subclasses(sub))]

    statuses = {cls.status for cls in subclasses(OAuthError)}
    assert 500 not in statuses
    assert statuses >= {400, 401, 403, 405, 413, 415, 429, 502, 503, 504}
