"""Unit tests for gateway.upstream.client: upstream URLs, the two pools, bounded answers."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from unittest import mock

import aiohttp
import pytest
from yarl import URL

from gateway.config.settings import Upstream
from gateway.errors import BadGateway
from gateway.upstream.client import UpstreamClient, decode_answer, read_answer


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


@pytest.mark.parametrize("pool", ["passthrough", "guarded"])
def test_sessions_before_start_are_an_error(pool: str) -> None:
    client = UpstreamClient(Upstream(url=URL("http://as:3000")))
    with pytest.raises(RuntimeError, match="start"):
        getattr(client, pool)


async def test_guarded_and_passthrough_pools_are_separate_and_sized() -> None:
    client = UpstreamClient(
        Upstream(url=URL("http://as:3000"), max_connections=7, guarded_connections=3)
    )
    await client.start()
    try:
        assert client.passthrough is not client.guarded
        assert client.passthrough.connector is not None
        assert client.guarded.connector is not None
        assert client.passthrough.connector.limit == 7
        assert client.guarded.connector.limit == 3
    finally:
        await client.close()


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


DOCUMENT = b'{"registration_endpoint": "http://up:3000/reg"}'


def _deflate(data: bytes, wbits: int) -> bytes:
    compressor = zlib.compressobj(wbits=wbits)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("coding", "body"),
    [
        (None, DOCUMENT),
        ("identity", DOCUMENT),
        ("gzip", gzip.compress(DOCUMENT)),
        ("X-GZIP", gzip.compress(DOCUMENT)),
        ("deflate", zlib.compress(DOCUMENT)),  # zlib, as RFC 9110 §8.4.1.2 says
        ("deflate", _deflate(DOCUMENT, -zlib.MAX_WBITS)),  # raw deflate, as some send
    ],
)
def test_guarded_answers_are_decoded(coding: str | None, body: bytes) -> None:
    assert decode_answer(body, coding, 1024) == DOCUMENT


@pytest.mark.parametrize(
    ("coding", "body", "rule"),
    [
        ("br", b"\x1b\x00", "upstream.unreadable_encoding"),
        ("gzip, br", gzip.compress(DOCUMENT), "upstream.unreadable_encoding"),
        ("gzip", b"not gzip at all", "upstream.unreadable_encoding"),
        # A small compressed answer may not expand past the answer limit (a zip bomb).
        ("gzip", gzip.compress(b"{" + b" " * 1_000_000 + b"}"), "upstream.response_too_large"),
    ],
)
def test_unreadable_or_oversized_codings_are_refused(coding: str, body: bytes, rule: str) -> None:
    with pytest.raises(BadGateway) as error:
        decode_answer(body, coding, 1024)
    assert error.value.rule == rule
