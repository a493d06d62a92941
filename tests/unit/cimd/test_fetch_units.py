"""The parts of gateway.cimd.fetch that need no document server: the client_id URL rules,
cache lifetimes (RFC 9111), the LRU cache, the per-host rate, strict JSON, the resolver
pinning and single-flight (with a lookup that never touches the network)."""

from __future__ import annotations

import asyncio
import re
import socket
from email.utils import formatdate
from ipaddress import IPv4Address, ip_address, ip_network

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from gateway.cimd import fetch as f
from gateway.cimd.fetch import (
    DocumentCache,
    DocumentFetcher,
    Fetched,
    FetchError,
    FetchSettings,
    HostRateLimiter,
    PinnedResolver,
    cache_lifetime,
    freshness_lifetime,
    parse_document,
    pinned,
    validate_url,
)

NOW = 1_900_000_000.0
WIRE_SAFE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")


# --------------------------------------------------------------------------- URLs


@pytest.mark.parametrize(
    ("url", "host", "port", "request_url", "has_query"),
    [
        (
            "https://claude.ai/oauth/mcp-oauth-client-metadata",
            "claude.ai",
            443,
            "https://claude.ai/oauth/mcp-oauth-client-metadata",
            False,
        ),
        (
            "https://vscode.dev:8443/oauth/client-metadata.json",
            "vscode.dev",
            8443,
            "https://vscode.dev:8443/oauth/client-metadata.json",
            False,
        ),
        (
            "https://ChatGPT.com./oauth/client.json",
            "chatgpt.com",
            443,
            "https://chatgpt.com/oauth/client.json",
            False,
        ),
        (
            "https://zed.dev/oauth/client.json?v=2",
            "zed.dev",
            443,
            "https://zed.dev/oauth/client.json?v=2",
            True,
        ),
    ],
)
def test_valid_client_id_urls(url, host, port, request_url, has_query):
    """https URLs with a path on a public name are accepted: the host normalized, the
    default port implied, a query allowed but noted."""
    target = validate_url(url)
    assert (target.url, target.host, target.port) == (url, host, port)
    assert (target.request_url, target.has_query) == (request_url, has_query)


@pytest.mark.parametrize(
    "url",
    [
        "http://claude.ai/oauth/client.json",  # not https
        "https://claude.ai",  # no path
        "https://claude.ai/",  # the path must be more than "/"
        "https://user:pw@claude.ai/oauth/client.json",  # userinfo
        "https://claude.ai@evil.example.com/x.json",  # userinfo hiding the host
        "https://claude.ai/oauth/client.json#frag",  # fragment
        "https://claude.ai/oauth/../client.json",  # dot segment
        "https://claude.ai/oauth/./client.json",
        "https://claude.ai/oauth/%2e%2e/client.json",  # encoded dot segment
        "https://claude.ai/oauth/%252E%252E/client.json",  # double-encoded
        "https://127.0.0.1/client.json",  # IP literals in every notation
        "https://[::1]/client.json",
        "https://[::ffff:127.0.0.1]/client.json",
        "https://2130706433/client.json",
        "https://0x7f.1/client.json",
        "https://localhost/client.json",  # special-use and private names
        "https://metadata.google.internal/computeMetadata/v1/",
        "https://kubernetes/client.json",
        "https://vault.corp/client.json",
        "https://claude.ai\\@evil.example.com/x.json",  # backslash
        "https://claude.ai/oauth/client.json\r\nHost: evil",  # control characters
        "ftp://claude.ai/client.json",
        "",
    ],
)
def test_invalid_client_id_urls(url):
    """Everything the draft forbids, and every way of naming an internal host, is
    ``cimd.invalid_url``, with a description fit for the wire."""
    with pytest.raises(FetchError) as caught:
        validate_url(url)
    assert caught.value.rule == f.INVALID_URL
    assert WIRE_SAFE.fullmatch(caught.value.description)


def test_error_description_is_wire_safe():
    """Whatever goes into a FetchError, its description is RFC 6749 §5.2-safe; the detail
    keeps the original."""
    error = FetchError(f.STATUS, 'bad "value"\n\\ \u202e é')
    assert WIRE_SAFE.fullmatch(error.description)
    assert error.detail == 'bad "value"\n\\ \u202e é'
    twin = error.clone()
    assert twin is not error and (twin.rule, twin.description) == (error.rule, error.description)


def test_rule_ids_are_cimd_rules():
    """Every rule id has a meaning, and they all live under ``cimd.``."""
    ids = {v for k, v in vars(f).items() if k.isupper() and isinstance(v, str) and "." in v}
    assert ids == set(f.RULES)
    assert all(rule.startswith(("cimd.fetch.", "cimd.invalid_url")) for rule in f.RULES)


# --------------------------------------------------------------------------- caching


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"Cache-Control": "max-age=300"}, 300.0),
        ({"Cache-Control": 'max-age="300"'}, 300.0),
        ({"Cache-Control": "public, MAX-AGE=120"}, 120.0),
        ({"Cache-Control": "max-age=300, s-maxage=30"}, 30.0),
        ({"Cache-Control": "max-age=300", "Age": "100"}, 200.0),
        ({"Cache-Control": "max-age=300", "Age": "400"}, 0.0),
        ({"Cache-Control": "max-age=300, no-store"}, 0.0),
        ({"Cache-Control": "no-cache"}, 0.0),
        ({"Cache-Control": "private, max-age=300"}, 0.0),
        ({"Cache-Control": "max-age=-1"}, 0.0),  # invalid: stale
        ({"Cache-Control": "max-age=abc"}, 0.0),
        ({"Cache-Control": "max-age"}, 0.0),
        ({"Cache-Control": "max-age=10, max-age=20"}, 0.0),  # conflicting: stale
        ({"Cache-Control": "max-age=10, max-age=10"}, 10.0),
        ({"Expires": formatdate(NOW + 600, usegmt=True)}, 600.0),
        (
            {"Expires": formatdate(NOW + 600, usegmt=True), "Date": formatdate(NOW - 60)},
            660.0,
        ),
        ({"Expires": "0"}, 0.0),  # RFC 9111 §5.3: invalid means already expired
        ({"Expires": formatdate(NOW - 600, usegmt=True)}, 0.0),
        ({"Cache-Control": "max-age=50", "Expires": formatdate(NOW + 600, usegmt=True)}, 50.0),
    ],
)
def test_freshness_lifetime(headers, expected):
    """RFC 9111 §4.2.1 as a shared cache: s-maxage, max-age, Expires - Date, less Age;
    invalid values and no-store/no-cache/private mean stale; no header means no opinion."""
    assert freshness_lifetime(CIMultiDict(headers), NOW) == expected


def test_repeated_cache_control_headers_are_combined():
    """Two Cache-Control header lines are one list of directives (RFC 9110 §5.3)."""
    headers = CIMultiDict([("Cache-Control", "public"), ("Cache-Control", "no-store")])
    assert freshness_lifetime(headers, NOW) == 0.0


@given(
    st.dictionaries(
        st.sampled_from(["Cache-Control", "Expires", "Age", "Date"]),
        st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
        | st.integers(-(10**12), 10**12).map(str)
        | st.sampled_from(["max-age=5", "max-age=99999999999", "no-store", 's-maxage="7"']),
    )
)
def test_cache_lifetime_is_always_within_bounds(headers):
    """Whatever the headers say, the gateway keeps a document between min_cache_age and
    max_cache_age, and never raises."""
    assert cache_lifetime(CIMultiDict(headers), NOW, min_age=60.0, max_age=86400.0) >= 60.0
    assert cache_lifetime(CIMultiDict(headers), NOW, min_age=60.0, max_age=86400.0) <= 86400.0


def fetched(url: str, expires_at: float = NOW + 60) -> Fetched:
    return Fetched(url, {"client_id": url}, NOW, expires_at, False, 200, 1.0, "192.0.2.1")


def test_cache_expires_and_evicts_least_recently_used():
    """Entries expire at ``expires_at``; past ``size`` the least recently used goes."""
    cache = DocumentCache(2)
    cache.put(fetched("a"))
    cache.put(fetched("b", NOW + 5))
    assert cache.get("a", NOW) is not None  # a is now the most recent
    cache.put(fetched("c"))
    assert cache.get("b", NOW) is None and len(cache) == 2
    assert cache.get("a", NOW + 59) is not None
    assert cache.get("a", NOW + 60) is None
    cache.pop("c")
    assert len(cache) == 0


# --------------------------------------------------------------------------- rate


def test_rate_limiter_window():
    """10 fetches per host per 60 s: the 11th waits until the oldest leaves the window;
    hosts are counted apart."""
    limiter = HostRateLimiter(10, 60.0)
    for i in range(10):
        assert limiter.acquire("claude.ai", NOW + i) is None
    assert limiter.acquire("claude.ai", NOW + 10) == pytest.approx(50.0)
    assert limiter.acquire("vscode.dev", NOW + 10) is None
    assert limiter.acquire("claude.ai", NOW + 59.9) is not None
    assert limiter.acquire("claude.ai", NOW + 60) is None


@given(st.lists(st.tuples(st.sampled_from("ab"), st.floats(0, 300)), max_size=200))
def test_rate_limiter_never_admits_more_than_rate_in_any_window(events):
    """For any sequence of requests, no window of 60 s holds more than 10 admitted
    fetches of one host."""
    limiter = HostRateLimiter(10, 60.0)
    admitted: dict[str, list[float]] = {"a": [], "b": []}
    now = 0.0
    for host, step in events:
        now += step / 100
        if limiter.acquire(host, now) is None:
            admitted[host].append(now)
    for times in admitted.values():
        for start in times:
            assert sum(start <= t < start + 60.0 for t in times) <= 10


def test_rate_limiter_forgets_idle_hosts():
    """A stream of distinct hosts does not grow the table without bound."""
    limiter = HostRateLimiter(10, 60.0)
    for i in range(5000):
        limiter.acquire(f"h{i}.example.com", NOW + i)
    assert len(limiter) < 2100


# --------------------------------------------------------------------------- JSON


def test_parse_document_accepts_an_object():
    """A strict JSON object comes back as a dict."""
    assert parse_document(b'{"client_id": "x", "n": 1.5, "l": [1]}') == {
        "client_id": "x",
        "n": 1.5,
        "l": [1],
    }


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b'"client"',
        b"null",
        b'{"a": 1, "a": 2}',
        b'{"jwks": {"keys": [], "keys": []}}',
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": 1e999}',
        b'{"a": "\\ud800"}',
        b"\xef\xbb\xbf{}",  # a byte order mark
        b'{"a": "\xff"}',
        b"[" * 100000 + b"]" * 100000,
        b"{} {}",
        b"<html></html>",
    ],
)
def test_parse_document_refuses_anything_else(body):
    """Not UTF-8, not strict JSON, not an object, or with duplicate keys: ``not_json``."""
    with pytest.raises(FetchError) as caught:
        parse_document(body)
    assert caught.value.rule == f.NOT_JSON
    assert WIRE_SAFE.fullmatch(caught.value.description)


# --------------------------------------------------------------------------- settings


def test_settings_are_checked():
    """Nonsense settings fail at construction, not at the first fetch."""
    for bad in (
        {"timeout": 0},
        {"max_bytes": 0},
        {"min_cache_age": 100, "max_cache_age": 10},
        {"per_host_rate": 0},
        {"cache_size": 0},
    ):
        with pytest.raises(ValueError):
            FetchSettings(**bad)
    with pytest.raises(ValueError):
        DocumentFetcher(FetchSettings(resolve={"claude.ai": "not-an-ip"}))


# --------------------------------------------------------------------------- resolution


async def test_resolver_answers_only_for_the_pinned_host():
    """The HTTP client's resolver answers with the vetted addresses of this task's fetch
    and refuses every other host (and everything outside a fetch)."""
    resolver = PinnedResolver()
    with pytest.raises(OSError):
        await resolver.resolve("claude.ai", 443)
    with pinned("claude.ai", (ip_address("192.0.2.7"), ip_address("2001:db8::7"))):
        results = await resolver.resolve("claude.ai", 443)
        with pytest.raises(OSError):
            await resolver.resolve("evil.example.com", 443)
    assert [(r["host"], r["port"], r["family"]) for r in results] == [
        ("192.0.2.7", 443, socket.AF_INET),
        ("2001:db8::7", 443, socket.AF_INET6),
    ]
    with pytest.raises(OSError):
        await resolver.resolve("claude.ai", 443)


async def test_pins_of_concurrent_tasks_stay_apart():
    """Two tasks fetching the same host each see their own vetted addresses."""
    resolver = PinnedResolver()

    async def fetch_as(address: str) -> str:
        with pinned("claude.ai", (ip_address(address),)):
            await asyncio.sleep(0.01)
            return (await resolver.resolve("claude.ai", 443))[0]["host"]

    assert await asyncio.gather(fetch_as("192.0.2.1"), fetch_as("192.0.2.2")) == [
        "192.0.2.1",
        "192.0.2.2",
    ]


class Lookup:
    """A DNS stand-in: counts calls, waits for ``release``, answers ``answer``."""

    def __init__(self, *answer: str) -> None:
        self.calls = 0
        self.answer = tuple(ip_address(a) for a in answer)
        self.release = asyncio.Event()

    async def __call__(self, host: str, port: int) -> tuple:
        self.calls += 1
        await self.release.wait()
        return self.answer


async def started(lookup: Lookup, **settings) -> DocumentFetcher:
    fetcher = DocumentFetcher(FetchSettings(**settings), lookup=lookup)
    await fetcher.start()
    return fetcher


async def test_resolve_override_is_vetted_without_dns():
    """A ``resolve`` override replaces DNS but not the address check."""
    lookup = Lookup("8.8.8.8")
    fetcher = await started(lookup, resolve={"claude.ai": "10.0.0.1"})
    try:
        with pytest.raises(FetchError) as caught:
            await fetcher.fetch("https://claude.ai/oauth/client.json", now=NOW)
    finally:
        await fetcher.close()
    assert caught.value.rule == f.PRIVATE_ADDRESS and lookup.calls == 0
    assert "10.0.0.1" in caught.value.detail and "10.0.0.1" not in caught.value.description


async def test_failure_reaches_every_waiter_and_is_not_cached():
    """Twenty concurrent fetches of one URL make one lookup; its refusal reaches all of
    them (each its own exception), and the next fetch tries again."""
    lookup = Lookup("169.254.169.254")
    fetcher = await started(lookup)
    url = "https://claude.ai/oauth/client.json"
    try:
        waiters = [asyncio.ensure_future(fetcher.fetch(url, now=NOW)) for _ in range(20)]
        await asyncio.sleep(0.01)
        lookup.release.set()
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert lookup.calls == 1
        assert all(isinstance(r, FetchError) and r.rule == f.PRIVATE_ADDRESS for r in results)
        assert len({id(r) for r in results}) == 20
        with pytest.raises(FetchError):
            await fetcher.fetch(url, now=NOW)
        assert lookup.calls == 2 and fetcher.cached(url, now=NOW) is None
    finally:
        await fetcher.close()


async def test_cancelled_waiter_does_not_cancel_the_shared_fetch():
    """One waiter giving up leaves the shared fetch running for the others."""
    lookup = Lookup("10.0.0.1")
    fetcher = await started(lookup)
    url = "https://claude.ai/oauth/client.json"
    try:
        first = asyncio.ensure_future(fetcher.fetch(url, now=NOW))
        second = asyncio.ensure_future(fetcher.fetch(url, now=NOW))
        await asyncio.sleep(0.01)
        first.cancel()
        lookup.release.set()
        with pytest.raises(FetchError):
            await second
        assert first.cancelled() and lookup.calls == 1
    finally:
        await fetcher.close()


async def test_dns_failure_and_empty_answer_are_fetch_failures():
    """A name that does not resolve, or resolves to nothing, is ``failed``."""

    async def nxdomain(host: str, port: int) -> tuple:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    for lookup in (nxdomain, Lookup()):
        if isinstance(lookup, Lookup):
            lookup.release.set()
        fetcher = DocumentFetcher(FetchSettings(), lookup=lookup)
        await fetcher.start()
        try:
            with pytest.raises(FetchError) as caught:
                await fetcher.fetch("https://claude.ai/oauth/client.json", now=NOW)
        finally:
            await fetcher.close()
        assert caught.value.rule == f.FAILED


async def test_rate_limit_counts_network_attempts():
    """Failed attempts count too: the 11th lookup-bound fetch on one host within the
    window is refused before any lookup, with a Retry-After."""
    lookup = Lookup("10.0.0.1")
    lookup.release.set()
    fetcher = await started(lookup)
    try:
        for i in range(10):
            with pytest.raises(FetchError):
                await fetcher.fetch(f"https://claude.ai/doc/{i}.json", now=NOW)
        with pytest.raises(FetchError) as caught:
            await fetcher.fetch("https://claude.ai/doc/10.json", now=NOW)
    finally:
        await fetcher.close()
    assert caught.value.rule == f.RATE_LIMITED and lookup.calls == 10
    assert caught.value.retry_after == pytest.approx(60.0)


async def test_closed_port_is_a_fetch_failure():
    """A vetted address with nothing listening is ``failed``, reported quickly."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    fetcher = DocumentFetcher(
        FetchSettings(
            resolve={"claude.ai": "127.0.0.1"},
            allow_private_addresses=(ip_network("127.0.0.1/32"),),
        )
    )
    await fetcher.start()
    try:
        with pytest.raises(FetchError) as caught:
            await fetcher.fetch(f"https://claude.ai:{port}/oauth/client.json", now=NOW)
    finally:
        await fetcher.close()
    assert caught.value.rule == f.FAILED and caught.value.elapsed_ms < 1000


def test_overrides_accept_several_addresses():
    """``resolve`` takes one address, a comma-separated list, or a tuple (curl's form)."""
    fetcher = DocumentFetcher(
        FetchSettings(resolve={"A.example.com.": "192.0.2.1, 192.0.2.2", "b.example.com": ("::1",)})
    )
    assert fetcher._overrides == {
        "a.example.com": (IPv4Address("192.0.2.1"), IPv4Address("192.0.2.2")),
        "b.example.com": (ip_address("::1"),),
    }
