"""The metadata document fetcher against a real HTTPS server (tests.support.cimd_server).

Every refusal the draft asks for (draft-ietf-oauth-client-id-metadata-document: no
redirects, 200 and application/json only, special-use addresses refused, errors never
cached, a 5 KiB cap) is shown on the wire, and so are the SSRF defences around it: the
server's connection and request counters prove a refused fetch never reached it, DNS is
asked once per fetch, and a certificate from a CA that is not configured is refused.

Public-looking names (``mcp-client.example.com``, ``claude.ai``, ...) are mapped to
127.0.0.1 with ``FetchSettings.resolve``, and 127.0.0.1/32 is exempted with
``allow_private_addresses``: exactly what a test or private deployment would configure.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest
import trustme

from gateway.cimd import fetch as f
from gateway.cimd.fetch import DocumentFetcher, FetchError, FetchSettings
from tests.support.cimd_server import CimdServer

pytestmark = pytest.mark.integration

HOST = "mcp-client.example.com"
NAMES = (HOST, "claude.ai", "vscode.dev", "chatgpt.com", "multi.example.com")
LOOPBACK = (ip_network("127.0.0.1/32"),)
NOW = 1_900_000_000.0


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("cimd-ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    yield path


@pytest.fixture
async def server(ca: trustme.CA) -> AsyncIterator[CimdServer]:
    async with CimdServer(ca.issue_cert(*NAMES, "rebind.example.com")) as running:
        yield running


def settings(ca_file: Path | None, **changes: Any) -> FetchSettings:
    values: dict[str, Any] = {
        "timeout": 1.0,
        "ca_file": ca_file,
        "allow_private_addresses": LOOPBACK,
        "resolve": dict.fromkeys(NAMES[:-1], "127.0.0.1")
        | {"multi.example.com": ("127.0.0.1", "10.20.30.40")},
    }
    return FetchSettings(**(values | changes))


@pytest.fixture
async def fetcher(ca_file: Path) -> AsyncIterator[DocumentFetcher]:
    running = DocumentFetcher(settings(ca_file))
    await running.start()
    try:
        yield running
    finally:
        await running.close()


async def refused(fetcher: DocumentFetcher, url: str, rule: str) -> FetchError:
    with pytest.raises(FetchError) as caught:
        await fetcher.fetch(url, now=NOW)
    assert caught.value.rule == rule, caught.value.detail
    return caught.value


# --------------------------------------------------------------------------- success


async def test_good_document_is_fetched_from_the_vetted_address(fetcher, server):
    """A good document comes back parsed, with status 200, the address connected to
    (127.0.0.1, as the override said) and the headers the fetch promises: identity
    encoding, JSON, the gateway's User-Agent, no cookies."""
    url = server.url(HOST, "/oauth/client.json")
    got = await fetcher.fetch(url, now=NOW)
    assert got.document["client_id"] == url
    assert (got.status, got.address, got.cache_hit, got.has_query) == (
        200,
        "127.0.0.1",
        False,
        False,
    )
    assert got.url == url and got.fetched_at == NOW and got.elapsed_ms > 0
    sent = server.requests[0]
    assert sent["Accept-Encoding"] == "identity"
    assert sent["Accept"] == "application/json"
    assert sent["User-Agent"] == "dcr-gateway"
    assert "Cookie" not in sent


@pytest.mark.parametrize(
    ("host", "path"),
    [
        ("claude.ai", "/oauth/mcp-oauth-client-metadata"),
        ("vscode.dev", "/oauth/client-metadata.json"),
        ("chatgpt.com", "/oauth/client.json"),
    ],
)
async def test_real_clients_document_paths(fetcher, server, host, path):
    """The URLs real clients use (claude.ai, VS Code, ChatGPT) fetch fine; TLS verified the
    certificate for each name (SNI), since the server has one certificate for them all."""
    server_path = "/doc/client.json" if path.endswith("metadata") else "/oauth/client.json"
    url = server.url(host, server_path)
    got = await fetcher.fetch(url, now=NOW)
    assert got.document["client_id"] == url
    assert f.validate_url(f"https://{host}{path}").host == host


async def test_query_is_allowed_and_noted(fetcher, server):
    """A query (SHOULD NOT, says the draft) is fetched but flagged ``has_query``."""
    url = server.url(HOST, "/oauth/client.json?v=1")
    got = await fetcher.fetch(url, now=NOW)
    assert got.has_query and got.document["client_id"] == url


async def test_cached_document_is_served_without_a_request(fetcher, server):
    """The second fetch of a URL is a cache hit: same document, no second request, and a
    copy: changing it does not change what the cache holds."""
    url = server.url(HOST, "/oauth/client.json")
    first = await fetcher.fetch(url, now=NOW)
    first.document["client_name"] = "changed by a caller"
    second = await fetcher.fetch(url, now=NOW + 10)
    assert second.cache_hit and second.document["client_name"] == "Test MCP client"
    assert server.hits["/oauth/client.json"] == 1
    assert fetcher.cached(url, now=NOW + 10) is not None
    fetcher.invalidate(url)
    assert fetcher.cached(url, now=NOW + 10) is None
    assert not (await fetcher.fetch(url, now=NOW + 10)).cache_hit
    assert server.hits["/oauth/client.json"] == 2


@pytest.mark.parametrize(
    ("name", "lifetime"),
    [
        ("max-age-300", 300),
        ("max-age-5", 60),  # raised to min_cache_age
        ("huge", 86400),  # cut to max_cache_age
        ("no-store", 60),
        ("s-maxage", 1000),  # a shared cache takes s-maxage over max-age
        ("aged", 100),  # max-age less the Age a CDN reported
        ("none", 60),
    ],
)
async def test_cache_lifetime_follows_headers_within_bounds(fetcher, server, name, lifetime):
    """How long a document is kept is what its caching headers say, clamped to
    [min_cache_age, max_cache_age]."""
    got = await fetcher.fetch(server.url(HOST, f"/cache/{name}.json"), now=NOW)
    assert got.expires_at - got.fetched_at == lifetime


async def test_cache_expires(fetcher, server):
    """A max-age=300 document is served from the cache at 299 s and fetched again at 301 s."""
    url = server.url(HOST, "/cache/max-age-300.json")
    await fetcher.fetch(url, now=NOW)
    assert (await fetcher.fetch(url, now=NOW + 299)).cache_hit
    assert not (await fetcher.fetch(url, now=NOW + 301)).cache_hit
    assert server.hits["/cache/max-age-300.json"] == 2


# --------------------------------------------------------------------------- addresses


async def test_loopback_is_refused_without_the_exemption(ca_file, server):
    """Without ``allow_private_addresses`` the same URL is refused as a private address,
    and no connection reaches the server."""
    fetcher = DocumentFetcher(settings(ca_file, allow_private_addresses=()))
    await fetcher.start()
    try:
        error = await refused(fetcher, server.url(HOST, "/oauth/client.json"), f.PRIVATE_ADDRESS)
    finally:
        await fetcher.close()
    assert "127.0.0.1" not in error.description  # the wire names no internal address
    assert "127.0.0.1" in error.detail  # the audit event does
    assert server.connections == 0 and not server.hits


async def test_one_private_address_among_several_is_refused(fetcher, server):
    """A host resolving to 127.0.0.1 (exempt) and 10.20.30.40 is refused, with no
    connection made: every address must pass, not just the first."""
    error = await refused(
        fetcher, server.url("multi.example.com", "/doc/a.json"), f.PRIVATE_ADDRESS
    )
    assert "10.20.30.40" in error.detail
    assert server.connections == 0


async def test_dns_is_asked_once_per_fetch(fetcher, server, monkeypatch):
    """DNS rebinding: a resolver that answers 127.0.0.1 first and 169.254.169.254 after is
    asked once per fetch; the connection goes to the first answer (no second lookup by the
    HTTP client), and the next fetch, whose one lookup gets the metadata address, is
    refused before connecting."""
    calls: list[str] = []

    async def rebinding(host: str, port: Any, **_: Any) -> list[Any]:
        calls.append(host)
        address = "127.0.0.1" if len(calls) == 1 else "169.254.169.254"
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", rebinding)
    got = await fetcher.fetch(server.url("rebind.example.com", "/doc/a.json"), now=NOW)
    assert calls == ["rebind.example.com"] and got.address == "127.0.0.1"
    error = await refused(
        fetcher, server.url("rebind.example.com", "/doc/b.json"), f.PRIVATE_ADDRESS
    )
    assert "169.254.169.254" in error.detail and len(calls) == 2
    assert server.hits["/doc/a.json"] == 1 and server.hits["/doc/b.json"] == 0
    assert server.connections == 1


# --------------------------------------------------------------------------- TLS


async def test_certificate_from_an_unconfigured_ca_is_refused(fetcher):
    """A server whose certificate comes from another CA is refused as ``tls``: TLS is
    verified, and only the configured CA is added to the system store."""
    other = trustme.CA()
    async with CimdServer(other.issue_cert(HOST)) as stranger:
        error = await refused(fetcher, stranger.url(HOST, "/oauth/client.json"), f.TLS)
        assert not stranger.hits
    assert "verify" in error.description


async def test_test_ca_is_trusted_only_when_configured(server):
    """Without ``ca_file`` the test CA's certificate is refused too."""
    fetcher = DocumentFetcher(settings(None))
    await fetcher.start()
    try:
        await refused(fetcher, server.url(HOST, "/oauth/client.json"), f.TLS)
    finally:
        await fetcher.close()
    assert not server.hits


# --------------------------------------------------------------------------- responses


async def test_redirect_is_not_followed(fetcher, server):
    """A 302 is an error (``redirect``) and its target is never asked for."""
    error = await refused(fetcher, server.url(HOST, "/redirect.json"), f.REDIRECT)
    assert error.status == 302 and "/target.json" in error.detail
    assert server.hits["/redirect.json"] == 1 and server.hits["/target.json"] == 0


@pytest.mark.parametrize(
    ("path", "rule", "status"),
    [
        ("/challenge.html", f.CONTENT_TYPE, 200),
        ("/untyped.json", f.CONTENT_TYPE, 200),
        ("/latin1.json", f.CONTENT_TYPE, 200),
        ("/invalid.json", f.NOT_JSON, 200),
        ("/array.json", f.NOT_JSON, 200),
        ("/duplicate.json", f.NOT_JSON, 200),
        ("/nested-duplicate.json", f.NOT_JSON, 200),
        ("/missing.json", f.STATUS, 404),
        ("/error.json", f.STATUS, 500),
        ("/gzip.json", f.CONTENT_ENCODING, 200),
        ("/big-length.json", f.TOO_LARGE, 200),
        ("/big-chunked.json", f.TOO_LARGE, 200),
    ],
)
async def test_bad_responses_are_refused(fetcher, server, path, rule, status):
    """Each bad answer has its rule, carries the server's status, and is not cached."""
    url = server.url(HOST, path)
    error = await refused(fetcher, url, rule)
    assert error.status == status and error.address == "127.0.0.1"
    assert fetcher.cached(url, now=NOW) is None
    assert all(0x20 <= ord(c) < 0x7F and c not in '"\\' for c in error.description)


async def test_size_cap_counts_bytes_without_content_length(fetcher, server):
    """The chunked 6 KiB body has no Content-Length, so only counting the bytes read can
    refuse it: the message says so."""
    error = await refused(fetcher, server.url(HOST, "/big-chunked.json"), f.TOO_LARGE)
    assert "larger than 5120 bytes" in error.description


@pytest.mark.parametrize("path", ["/slow-body.json", "/slow-headers.json"])
async def test_deadline_covers_headers_and_body(fetcher, server, path):
    """A body trickling past the deadline, and headers that never come in time, both end
    at the one deadline (1 s here) as ``timeout``."""
    error = await refused(fetcher, server.url(HOST, path), f.TIMEOUT)
    assert 900 <= error.elapsed_ms < 1800


async def test_errors_are_not_cached(fetcher, server):
    """A failed fetch is not remembered: the next call asks the server again, and a server
    that recovered is then served."""
    await refused(fetcher, server.url(HOST, "/error.json"), f.STATUS)
    await refused(fetcher, server.url(HOST, "/error.json"), f.STATUS)
    assert server.hits["/error.json"] == 2
    await refused(fetcher, server.url(HOST, "/flaky.json"), f.STATUS)
    got = await fetcher.fetch(server.url(HOST, "/flaky.json"), now=NOW)
    assert got.status == 200 and server.hits["/flaky.json"] == 2


# --------------------------------------------------------------------------- load


async def test_concurrent_fetches_share_one_request(fetcher, server):
    """Twenty concurrent fetches of one URL make exactly one request and all get the
    document (each its own copy)."""
    url = server.url(HOST, "/wait.json")
    results = await asyncio.gather(*(fetcher.fetch(url, now=NOW) for _ in range(20)))
    assert server.hits["/wait.json"] == 1 and server.connections == 1
    assert all(r.document == results[0].document for r in results)
    assert len({id(r.document) for r in results}) == 20


async def test_per_host_rate_limits_network_fetches_only(fetcher, server):
    """The 11th distinct URL on one host within the window is refused without a request;
    cached documents and other hosts are still served."""
    urls = [server.url(HOST, f"/doc/{i}.json") for i in range(11)]
    for url in urls[:10]:
        await fetcher.fetch(url, now=NOW)
    error = await refused(fetcher, urls[10], f.RATE_LIMITED)
    assert error.retry_after is not None and 0 < error.retry_after <= 60
    assert sum(server.hits.values()) == 10
    assert (await fetcher.fetch(urls[0], now=NOW + 1)).cache_hit
    assert not (await fetcher.fetch(server.url("vscode.dev", "/doc/0.json"), now=NOW)).cache_hit
    later = await fetcher.fetch(urls[10], now=NOW + 61)
    assert later.status == 200 and sum(server.hits.values()) == 12
