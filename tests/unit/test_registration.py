"""Unit tests for the pure functions of gateway.registration."""

from __future__ import annotations

import asyncio
from unittest import mock

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.audit import RegistrationRecord
from gateway.errors import BadGateway, UnsupportedMediaType
from gateway.registration import (
    RULE_CONTENT_ENCODING,
    RULE_CONTENT_TYPE,
    check_content_headers,
    read_answer,
    summarize_answer,
)


def headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


def record() -> RegistrationRecord:
    return RegistrationRecord(
        request_id="rid", client_ip="203.0.113.9", user_agent=None, method="POST", path="/reg"
    )


# --- check_content_headers -----------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "Application/JSON; charset=UTF-8",
        "application/json;charset=utf-8",
        "application/json; charset=utf8",
        'application/json; charset="utf-8"',
        " application/json ",
        "application/json; boundary=x",
        "application/json;",
    ],
    ids=[
        "plain",
        "mixed-case-with-charset",
        "no-space",
        "utf8-alias",
        "quoted-charset",
        "surrounding-spaces",
        "other-parameter",
        "empty-parameter",
    ],
)
def test_content_type_accepted(content_type: str) -> None:
    check_content_headers(headers(("Content-Type", content_type), ("Content-Length", "2")))


@pytest.mark.parametrize(
    "pairs",
    [
        (("Content-Type", "text/plain"),),
        (("Content-Type", "application/jsonx"),),
        (("Content-Type", "application/x-www-form-urlencoded"),),
        (("Content-Type", "application/jwt"),),
        (("Content-Type", "application/json-patch+json"),),
        (("Content-Type", "application/json, text/plain"),),
        (("Content-Type", "application/json; charset=latin-1"),),
        (("Content-Type", "application/json; charset=utf-16"),),
        (("Content-Type", "application/json; charset=utf-8; charset=latin-1"),),
        (("Content-Type", ""),),
        (("Content-Type", "application/json"), ("Content-Type", "application/json")),
        (("Content-Type", "application/json"), ("content-type", "text/plain")),
        (),
    ],
    ids=[
        "text-plain",
        "jsonx",
        "form",
        "jwt",
        "json-suffix",
        "comma-list",
        "latin-1",
        "utf-16",
        "second-charset",
        "empty",
        "two-equal-headers",
        "two-different-headers",
        "missing",
    ],
)
def test_content_type_refused(pairs: tuple[tuple[str, str], ...]) -> None:
    with pytest.raises(UnsupportedMediaType) as info:
        check_content_headers(headers(*pairs))
    assert info.value.status == 415
    assert info.value.error == "invalid_request"
    assert info.value.rule == RULE_CONTENT_TYPE == "request.content_type"


@pytest.mark.parametrize(
    "encoding",
    ["gzip", "deflate", "br", "identity", "", "GZIP"],
    ids=["gzip", "deflate", "br", "identity", "empty", "upper-case"],
)
def test_any_content_encoding_is_refused(encoding: str) -> None:
    incoming = headers(("Content-Type", "application/json"), ("Content-Encoding", encoding))
    with pytest.raises(UnsupportedMediaType) as info:
        check_content_headers(incoming)
    assert info.value.status == 415
    assert info.value.rule == RULE_CONTENT_ENCODING == "request.content_encoding"
    assert "Content-Encoding" in info.value.description


def test_refused_content_type_is_named_but_cut_short() -> None:
    with pytest.raises(UnsupportedMediaType) as info:
        check_content_headers(headers(("Content-Type", "text/" + "x" * 500)))
    assert repr("text/" + "x" * 75) in info.value.description
    assert "x" * 100 not in info.value.description


# --- summarize_answer ----------------------------------------------------------------------


FULL_ANSWER = (
    b'{"client_id": "c-123", "client_secret": "very-secret", '
    b'"registration_access_token": "rat-secret", "registration_client_uri": "https://as/reg/c", '
    b'"client_id_issued_at": 1700000000, "redirect_uris": ["https://a/cb"]}'
)


@pytest.mark.parametrize(
    ("body", "client_id", "upstream_error"),
    [
        (FULL_ANSWER, "c-123", None),
        (
            b'{"error": "invalid_redirect_uri", "error_description": "no"}',
            None,
            "invalid_redirect_uri",
        ),
        (b'{"client_id": "c", "error": "odd"}', "c", "odd"),
        (b'{"client_id": 123, "error": ["x"]}', None, None),
        (b'{"client_id": null}', None, None),
        (b'["client_id", "c"]', None, None),
        (b'"c-123"', None, None),
        (b"", None, None),
        (b"not json", None, None),
        (b"<html>502 Bad Gateway</html>", None, None),
        (b'{"client_id": "c"', None, None),
        (b"\xff\xfe\x00", None, None),
        (b'{"client_id": "' + b"c" * 800 + b'"}', "c" * 500, None),
        (b'{"error": "' + b"e" * 300 + b'"}', None, "e" * 100),
        ('{"client_id": "caf\u00e9"}'.encode(), "caf\u00e9", None),
    ],
    ids=[
        "success",
        "oauth-error",
        "both",
        "wrong-types",
        "null",
        "array",
        "string",
        "empty",
        "not-json",
        "html",
        "truncated",
        "binary",
        "long-client-id-cut",
        "long-error-cut",
        "unicode",
    ],
)
def test_summarize_answer(body: bytes, client_id: str | None, upstream_error: str | None) -> None:
    rec = record()
    summarize_answer(body, rec)
    assert rec.client_id == client_id
    assert rec.upstream_error == upstream_error


def test_summarize_answer_keeps_nothing_else() -> None:
    rec = record()
    before = rec.as_fields()
    summarize_answer(FULL_ANSWER, rec)
    after = rec.as_fields()
    changed = {k for k in after if after[k] != before[k]}
    assert changed == {"client_id"}
    text = repr(after)
    assert "very-secret" not in text
    assert "rat-secret" not in text
    assert "https://as/reg/c" not in text


def test_summarize_answer_survives_deep_nesting() -> None:
    rec = record()
    summarize_answer(b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b', "client_id": "c"}', rec)
    assert rec.client_id is None


def _stream(chunks: list[bytes]) -> aiohttp.StreamReader:
    protocol = mock.Mock(_reading_paused=False)
    stream = aiohttp.StreamReader(protocol, limit=2**16, loop=asyncio.get_running_loop())
    for chunk in chunks:
        stream.feed_data(chunk)
    stream.feed_eof()
    return stream


async def test_read_answer_reads_every_chunk() -> None:
    chunks = [b"a" * 1000, b"b" * 70000, b"c" * 5]
    assert await read_answer(_stream(chunks), 100000) == b"".join(chunks)


async def test_read_answer_refuses_more_than_the_limit() -> None:
    with pytest.raises(BadGateway) as refused:
        await read_answer(_stream([b"x" * 600, b"y" * 600]), 1000)
    assert refused.value.rule == "upstream.response_too_large"
    assert refused.value.status == 502
