"""Authorization server metadata served through the gateway, against node-oidc-provider.

Clients learn the registration endpoint from ``/.well-known/openid-configuration`` (OIDC
Discovery) or ``/.well-known/oauth-authorization-server`` (RFC 8414); node-oidc-provider
serves both.  Through the gateway each document must be the upstream's, key for key, but
for ``registration_endpoint``, which names the gateway's guarded ``/reg`` (or is absent
when the policy disables registration).  Parsed documents are cached for
``upstream.discovery_cache``; a :class:`RecordingProxy` between the gateway and the
upstream tells which fetches reached the upstream.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.support.e2e import REQUEST_ID, assert_server_header, assert_wire_refusal, request
from tests.support.gzip_proxy import CompressingProxy
from tests.support.upstream import free_port

pytestmark = pytest.mark.integration

OIDC = "/.well-known/openid-configuration"
RFC8414 = "/.well-known/oauth-authorization-server"
DOCUMENTS = (OIDC, RFC8414)
OPEN = {"version": 1, "mode": "open", "client": {"scopes": {"allowed": "any"}}}
DISABLED = {"version": 1, "mode": "disabled"}
LOCALHOST = (ipaddress.ip_network("127.0.0.1/32"),)


def forwarding_headers(gateway_url: str) -> dict[str, str]:
    """What the gateway tells the upstream about its public URL (an untrusted caller)."""
    authority = gateway_url.split("://", 1)[1]
    return {
        "X-Forwarded-Proto": "http",
        "X-Forwarded-Host": authority,
        "X-Forwarded-Port": authority.rsplit(":", 1)[1],
    }


async def document(session: aiohttp.ClientSession, url: str, **kwargs: Any) -> dict[str, Any]:
    answer = await request(session, "GET", url, **kwargs)
    assert answer.status == 200, answer
    assert answer.headers["Content-Type"].startswith("application/json"), answer.headers
    value = answer.json()
    assert isinstance(value, dict), value
    return value


def assert_same_but_registration(published: dict[str, Any], original: dict[str, Any]) -> None:
    """Every key but ``registration_endpoint`` present in both, with the same value."""
    keys = set(published) | set(original)
    differing = {
        key: (published.get(key, "<absent>"), original.get(key, "<absent>"))
        for key in keys - {"registration_endpoint"}
        if published.get(key, "<absent>") != original.get(key, "<absent>")
    }
    assert not differing, differing


# ---------------------------------------------------------------- the documents


async def test_both_documents_name_the_gateway_and_are_otherwise_the_upstreams(
    upstream_factory, gateway_factory, session
):
    port = free_port()
    gateway_url = f"http://127.0.0.1:{port}"
    server = upstream_factory(issuer=gateway_url)
    gateway = await gateway_factory(server.url, port=port)
    for path in DOCUMENTS:
        answer = await request(session, "GET", gateway.url + path)
        assert answer.status == 200, (path, answer)
        assert answer.headers["Content-Type"].startswith("application/json")
        assert REQUEST_ID.match(answer.headers["X-Request-ID"]), answer.headers
        assert_server_header(answer)
        published = answer.json()
        original = await document(
            session, server.url + path, headers=forwarding_headers(gateway.url)
        )
        assert published["issuer"] == gateway.url == original["issuer"]
        assert published["registration_endpoint"] == gateway.url + "/reg"
        assert_same_but_registration(published, original)
        # node built every endpoint for the gateway (it trusts X-Forwarded-Host) ...
        assert published["token_endpoint"] == gateway.url + "/token"
    # ... and both documents agree with each other.
    oidc = await document(session, gateway.url + OIDC)
    rfc8414 = await document(session, gateway.url + RFC8414)
    assert oidc == rfc8414


async def test_an_upstream_that_ignores_forwarding_headers_still_names_the_gateway_reg(
    upstream_factory, gateway_factory, session
):
    """Only ``registration_endpoint`` is the gateway's business: the other endpoints stay
    what the upstream wrote (here its own address)."""
    server = upstream_factory(trust_proxy=False)
    gateway = await gateway_factory(server.url)
    for path in DOCUMENTS:
        published = await document(session, gateway.url + path)
        original = await document(
            session, server.url + path, headers=forwarding_headers(gateway.url)
        )
        assert original["registration_endpoint"] == server.url + "/reg"  # not the gateway's
        assert published["registration_endpoint"] == gateway.url + "/reg"
        assert published["token_endpoint"] == server.url + "/token"
        assert_same_but_registration(published, original)


async def test_with_registration_disabled_the_key_is_absent(upstream, gateway_factory, session):
    gateway = await gateway_factory(upstream.url, policy=DISABLED)
    for path in DOCUMENTS:
        published = await document(session, gateway.url + path)
        original = await document(
            session, upstream.url + path, headers=forwarding_headers(gateway.url)
        )
        assert "registration_endpoint" in original
        assert "registration_endpoint" not in published, published
        assert_same_but_registration(published, original)


async def test_spellings_of_the_discovery_path_are_served_the_same(
    upstream, gateway_factory, session
):
    """The canonical form decides: a spelling the upstream's router would serve gets the
    rewritten document too, never the upstream's own ``registration_endpoint``."""
    gateway = await gateway_factory(upstream.url, policy=DISABLED)
    for path in (
        "/.WELL-KNOWN/openid-configuration",
        "/.well-known/openid-configuration/",
        "/.well-known/OAuth-Authorization-Server",
    ):
        published = await document(session, gateway.url + path)
        assert "registration_endpoint" not in published, (path, published)


async def test_head_answers_the_get_headers_without_a_body(upstream, gateway_factory, session):
    gateway = await gateway_factory(upstream.url, policy=OPEN)
    for path in DOCUMENTS:
        get = await request(session, "GET", gateway.url + path)
        async with session.head(gateway.url + path) as head:
            assert head.status == 200
            assert await head.read() == b""
            assert head.headers["Content-Type"] == get.headers["Content-Type"]
            assert int(head.headers["Content-Length"]) == len(get.body)
            assert head.headers["Server"] == "dcr-gateway"
            assert REQUEST_ID.match(head.headers["X-Request-ID"])


# ---------------------------------------------------------------- the cache


async def test_a_fetch_within_the_cache_window_does_not_reach_the_upstream(
    proxy, gateway_factory, session
):
    gateway = await gateway_factory(proxy.url, policy=OPEN, discovery_cache=0.5)
    since = proxy.mark()
    first = await document(session, gateway.url + OIDC)
    second = await document(session, gateway.url + OIDC)
    async with session.head(gateway.url + OIDC) as head:
        assert head.status == 200
    assert first == second
    assert proxy.requests(since) == [f"GET {OIDC}"]
    # The other document is another entry.
    await document(session, gateway.url + RFC8414)
    assert proxy.requests(since) == [f"GET {OIDC}", f"GET {RFC8414}"]
    await asyncio.sleep(0.6)
    third = await document(session, gateway.url + OIDC)
    assert third == first
    assert proxy.requests(since) == [f"GET {OIDC}", f"GET {RFC8414}", f"GET {OIDC}"]


async def test_a_zero_cache_window_asks_the_upstream_every_time(proxy, gateway_factory, session):
    gateway = await gateway_factory(proxy.url, policy=OPEN, discovery_cache=0)
    since = proxy.mark()
    for _ in range(3):
        await document(session, gateway.url + OIDC)
    assert proxy.requests(since) == [f"GET {OIDC}"] * 3


async def test_the_policy_decides_at_serving_time_not_at_caching_time(
    proxy, gateway_factory, session
):
    """Two gateways, one cache each: the cached document never carries the decision."""
    disabled = await gateway_factory(proxy.url, policy=DISABLED, discovery_cache=30)
    opened = await gateway_factory(proxy.url, policy=OPEN, discovery_cache=30)
    for _ in range(2):
        assert "registration_endpoint" not in await document(session, disabled.url + OIDC)
        assert (await document(session, opened.url + OIDC))["registration_endpoint"] == (
            opened.url + "/reg"
        )


async def test_the_cache_keeps_one_entry_per_forwarded_host(proxy, gateway_factory, session):
    """Behind a trusted proxy, ``X-Forwarded-Host`` decides the URLs the upstream writes:
    one host's document is never served to another."""
    gateway = await gateway_factory(
        proxy.url, policy=OPEN, discovery_cache=30, trusted_proxies=LOCALHOST
    )
    since = proxy.mark()
    docs = {}
    for host in ("a.example.test", "b.example.test", "a.example.test"):
        docs[host] = await document(
            session,
            gateway.url + OIDC,
            headers={"X-Forwarded-Host": host, "X-Forwarded-Proto": "https"},
        )
        assert docs[host]["token_endpoint"] == f"https://{host}/token"
    assert proxy.requests(since) == [f"GET {OIDC}"] * 2


async def test_a_non_200_answer_is_relayed_and_not_cached(
    proxy, upstream, gateway_factory, session
):
    """node answers 400 for an ``X-Forwarded-Host`` it cannot build URLs from (relayed from
    a trusted proxy): the answer comes back as it was, and the next fetch asks again."""
    gateway = await gateway_factory(
        proxy.url, policy=OPEN, discovery_cache=30, trusted_proxies=LOCALHOST
    )
    bad = {"X-Forwarded-Host": "h:99999"}
    direct = await request(session, "GET", upstream.url + OIDC, headers=bad)
    assert direct.status == 400, direct
    since = proxy.mark()
    for _ in range(2):
        answer = await request(session, "GET", gateway.url + OIDC, headers=bad)
        assert answer.status == 400, answer
        assert answer.json() == direct.json()
        assert answer.headers["Content-Type"] == direct.headers["Content-Type"]
        assert_server_header(answer)
    assert proxy.requests(since) == [f"GET {OIDC}"] * 2
    # A good document afterwards is served (and cached) as usual.
    good = await document(session, gateway.url + OIDC)
    assert good["registration_endpoint"] == gateway.url + "/reg"
    await document(session, gateway.url + OIDC)
    assert proxy.requests(since) == [f"GET {OIDC}"] * 3


async def test_an_unreachable_upstream_is_a_json_502(gateway_factory, session):
    dead = f"http://127.0.0.1:{free_port()}"
    gateway = await gateway_factory(dead, policy=OPEN, registration_paths=("/reg",))
    for path in DOCUMENTS:
        answer = await request(session, "GET", gateway.url + path)
        assert_wire_refusal(answer, 502, "temporarily_unavailable", "upstream.unreachable")
        async with session.head(gateway.url + path) as head:
            assert head.status == 502
            assert await head.read() == b""


async def test_an_upstream_gone_after_start_is_a_502_once_the_cache_expires(
    proxy, gateway_factory, session
):
    gateway = await gateway_factory(proxy.url, policy=OPEN, discovery_cache=0.5)
    cached = await document(session, gateway.url + OIDC)
    await proxy.close()
    assert await document(session, gateway.url + OIDC) == cached  # still within the window
    await asyncio.sleep(0.6)
    answer = await request(session, "GET", gateway.url + OIDC)
    assert_wire_refusal(answer, 502, "temporarily_unavailable", "upstream.unreachable")


# ---------------------------------------------------------------- a compressing upstream


@pytest.fixture(params=[False, True], ids=["honours-identity", "always-gzip"])
async def gzip_upstream(upstream_factory, request) -> AsyncIterator[CompressingProxy]:
    """node-oidc-provider behind a compressing proxy; it ignores forwarding headers, so its
    own ``registration_endpoint`` names itself, not the gateway.  The proxy either honours
    ``Accept-Encoding`` or compresses whatever was asked."""
    server = upstream_factory(trust_proxy=False)
    relay = await CompressingProxy(server.url, always=request.param).start()
    try:
        yield relay
    finally:
        await relay.close()


@pytest.mark.parametrize("policy", [OPEN, DISABLED], ids=["open", "disabled"])
async def test_a_compressing_upstream_still_gets_its_registration_endpoint_rewritten(
    gzip_upstream, gateway_factory, session, policy
):
    """An upstream behind nginx ``gzip on`` would answer the client's ``Accept-Encoding:
    gzip`` (every browser and HTTP library sends it) with a compressed document.  The
    gateway must still publish its own ``registration_endpoint`` (or none): relayed as it
    came, the document sends clients straight to the upstream's unguarded ``/reg``.  So it
    asks for ``identity``, and decodes what a misbehaving upstream compresses anyway."""
    gateway = await gateway_factory(gzip_upstream.url, policy=policy)
    for path in DOCUMENTS:
        published = await document(
            session, gateway.url + path, headers={"Accept-Encoding": "gzip, deflate"}
        )
        expected = gateway.url + "/reg" if policy is OPEN else None
        assert published.get("registration_endpoint") == expected, published
    assert gzip_upstream.accept_encodings == ["identity"] * (1 + len(DOCUMENTS))  # start-up too
    assert gzip_upstream.compressed == ((1 + len(DOCUMENTS)) if gzip_upstream.always else 0)
