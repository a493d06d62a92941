"""Hostile Client ID Metadata Documents and URLs, against the real gateway and upstream.

Every case is refused at the authorization endpoint with the gateway's own 400 page (JSON
when the client asks for it), never a redirect: the redirect URIs were not validated (RFC
9700 §4.11.2).  Nothing is created upstream, and each request writes one
``cimd.decision`` event naming the rule.  The documents come from a real HTTPS server
(:mod:`tests.support.cimd_documents`), which also tells which fetches reached it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support.cimd_documents import Answer, DocumentServer
from tests.support.cimd_gateway import (
    CALLBACK,
    DOC_CALLBACK,
    OPEN,
    FlowUpstream,
    allowlist,
    assert_refusal_json,
    assert_refusal_page,
    authorization_params,
    authorize,
    decisions,
    document,
    registrations,
    start_gateway,
    token_request,
)
from tests.support.upstream import UpstreamServer, free_port

pytestmark = pytest.mark.integration


HOST = "mcp-client.example.com"
ALLOWED = f"https://{HOST}:*/oauth/*"
EVIL_CB = "https://evil.example.com/callback"


@dataclass
class Case:
    """One hostile request: ``setup`` serves what it needs and returns the client_id;
    ``rule`` is what the gateway must name."""

    setup: Callable[[DocumentServer], str]
    rule: str
    redirect_uri: str | None = CALLBACK
    policy: dict[str, Any] = field(default_factory=lambda: OPEN)
    fetch: dict[str, Any] = field(default_factory=dict)
    #: The wire error of the JSON refusal.
    error: str = "invalid_client"
    #: The document server must never see a connection (the URL or address was refused).
    no_connection: bool = False
    #: A URL that must never be fetched (a redirect's target).
    never_fetched: Callable[[DocumentServer], str] | None = None


def doc(path: str = "/oauth/client.json", **changes: Any) -> Callable[[DocumentServer], str]:
    """Serve :func:`document` (with ``changes``) at ``path`` on :data:`HOST`."""

    def setup(docs: DocumentServer) -> str:
        url = docs.url(HOST, path)
        docs.serve(HOST, path, document(url, **changes))
        return url

    return setup


def answer(path: str, make: Callable[[str], Answer]) -> Callable[[DocumentServer], str]:
    """Serve ``make(url)`` at ``path`` on :data:`HOST`."""

    def setup(docs: DocumentServer) -> str:
        url = docs.url(HOST, path)
        docs.serve(HOST, path, make(url))
        return url

    return setup


def url_only(make: Callable[[DocumentServer], str]) -> Callable[[DocumentServer], str]:
    """A URL refused before any fetch; a good document is served where it points anyway."""

    def setup(docs: DocumentServer) -> str:
        good = docs.url(HOST, "/oauth/client.json")
        docs.serve(HOST, "/oauth/client.json", document(good))
        return make(docs)

    return setup


def redirect_to_target(docs: DocumentServer) -> str:
    target = docs.url(HOST, "/target.json")
    docs.serve(HOST, "/target.json", document(target))
    url = docs.url(HOST, "/redirect.json")
    docs.serve(HOST, "/redirect.json", Answer(status=302, body=b"", headers={"Location": target}))
    return url


def mismatch(docs: DocumentServer) -> str:
    url = docs.url(HOST, "/oauth/client.json")
    docs.serve(HOST, "/oauth/client.json", document(docs.url(HOST, "/oauth/other.json")))
    return url


PRIVATE_KEY_JWT = {
    **OPEN,
    "client": {
        "scopes": {"allowed": "any"},
        "token_endpoint_auth_methods": ["none", "private_key_jwt", "tls_client_auth"],
        "default_token_endpoint_auth_method": "none",
    },
}

CASES: dict[str, Case] = {
    "client_id_mismatch": Case(mismatch, "cimd.client_id_mismatch"),
    "over_5_kib": Case(
        doc(padding="x" * 6000),
        "cimd.fetch.too_large",
    ),
    "slow_body": Case(
        answer("/slow.json", lambda url: Answer(document=document(url), trickle=0.05)),
        "cimd.fetch.timeout",
        fetch={"timeout": 0.5},
    ),
    "redirect": Case(
        redirect_to_target,
        "cimd.fetch.redirect",
        never_fetched=lambda docs: docs.url(HOST, "/target.json"),
    ),
    "html_with_200": Case(
        answer(
            "/challenge.json",
            lambda url: Answer(
                body=b"<!doctype html><title>Just a moment...</title>", content_type="text/html"
            ),
        ),
        "cimd.fetch.content_type",
    ),
    "invalid_json": Case(
        answer("/invalid.json", lambda url: Answer(body=b'{"client_id": ')),
        "cimd.fetch.not_json",
    ),
    "not_found": Case(
        answer("/gone.json", lambda url: Answer(status=404, document={"error": "nope"})),
        "cimd.fetch.status",
    ),
    "client_secret": Case(doc(client_secret="s3cret"), "cimd.shared_secret"),
    "client_secret_expires_at": Case(doc(client_secret_expires_at=0), "cimd.shared_secret"),
    "client_secret_post": Case(
        doc(token_endpoint_auth_method="client_secret_post"), "cimd.shared_secret"
    ),
    "client_secret_basic": Case(
        doc(token_endpoint_auth_method="client_secret_basic"), "cimd.shared_secret"
    ),
    "tls_client_auth": Case(
        doc(token_endpoint_auth_method="tls_client_auth"),
        "cimd.unsupported_auth",
        policy=PRIVATE_KEY_JWT,
    ),
    "private_key_jwt_without_keys": Case(
        doc(token_endpoint_auth_method="private_key_jwt"),
        "cimd.jwks",
        policy=PRIVATE_KEY_JWT,
    ),
    "private_key_jwt_publishing_a_private_key": Case(
        doc(
            token_endpoint_auth_method="private_key_jwt",
            jwks={"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "d": "AA"}]},
        ),
        "cimd.jwks",
        policy=PRIVATE_KEY_JWT,
    ),
    "missing_redirect_uris": Case(doc(redirect_uris=None), "cimd.missing_field"),
    "missing_client_name": Case(doc(client_name=None), "cimd.missing_field"),
    "evil_redirect_uri_under_allowlist": Case(
        doc(redirect_uris=[EVIL_CB]),
        "redirect_uri.not_allowed",
        redirect_uri=EVIL_CB,
        policy=allowlist([ALLOWED]),
        error="invalid_redirect_uri",
    ),
    "redirect_uri_not_in_document": Case(doc(), "cimd.redirect_uri_mismatch", redirect_uri=EVIL_CB),
    "loopback_with_another_path": Case(
        doc(), "cimd.redirect_uri_mismatch", redirect_uri="http://127.0.0.1:45678/other"
    ),
    "loopback_with_another_host": Case(
        doc(), "cimd.redirect_uri_mismatch", redirect_uri="http://localhost:45678/callback"
    ),
    "loopback_with_a_query": Case(
        doc(), "cimd.redirect_uri_mismatch", redirect_uri=CALLBACK + "?next=evil"
    ),
    "no_redirect_uri_with_several_in_the_document": Case(
        doc(redirect_uris=[DOC_CALLBACK, "http://127.0.0.1/other"]),
        "cimd.redirect_uri_mismatch",
        redirect_uri=None,
    ),
    "private_address_without_exemption": Case(
        doc(), "cimd.fetch.private_address", fetch={"exempt": False}, no_connection=True
    ),
    "http_url": Case(
        url_only(lambda d: d.url(HOST, "/oauth/client.json").replace("https:", "http:")),
        "cimd.invalid_url",
        no_connection=True,
    ),
    "fragment": Case(
        url_only(lambda d: d.url(HOST, "/oauth/client.json") + "#frag"),
        "cimd.invalid_url",
        no_connection=True,
    ),
    "userinfo": Case(
        url_only(lambda d: d.url(HOST, "/oauth/client.json").replace("://", "://user@")),
        "cimd.invalid_url",
        no_connection=True,
    ),
    "dot_segments": Case(
        url_only(lambda d: d.url(HOST, "/oauth/../oauth/client.json")),
        "cimd.invalid_url",
        no_connection=True,
    ),
    "encoded_dot_segments": Case(
        url_only(lambda d: d.url(HOST, "/oauth/%2e%2e/oauth/client.json")),
        "cimd.invalid_url",
        no_connection=True,
    ),
    "ip_literal_host": Case(
        url_only(lambda d: f"https://127.0.0.1:{d.port}/oauth/client.json"),
        "cimd.invalid_url",
        no_connection=True,
    ),
    "no_path": Case(
        url_only(lambda d: d.url(HOST, "/")),
        "cimd.invalid_url",
        no_connection=True,
    ),
    "impersonating_client_name": Case(
        doc(client_name="Claude"), "client_name.impersonation", error="invalid_client_metadata"
    ),
    "not_on_the_allowlist": Case(
        doc("/elsewhere/client.json"),
        "cimd.not_allowed",
        policy=allowlist([ALLOWED]),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_hostile_client_is_refused_at_the_authorization_endpoint(
    cimd_upstream, gateway_factory, cimd_authority, documents, session, name
):
    """The case is refused with a 400 page (and, asked for, JSON) naming its rule, never
    a redirect; one ``cimd.decision`` per request; no registration; the upstream's client
    count unchanged."""
    case = CASES[name]
    fetch = {"timeout": 1.0, **case.fetch}
    gateway = await start_gateway(
        gateway_factory, cimd_upstream, cimd_authority, policy=case.policy, fetch=fetch
    )
    client_id = case.setup(documents)
    before = await cimd_upstream.count()

    page = await authorize(session, gateway, client_id, case.redirect_uri)
    assert_refusal_page(page, case.rule)
    [event] = decisions(gateway)
    assert (event["decision"], event["rule"], event["endpoint"]) == (
        "denied",
        case.rule,
        "authorization",
    )
    assert event["client_id_url"] == client_id
    assert event["status"] == 400
    assert event.get("bridged_client_id") is None

    as_json = await authorize(
        session, gateway, client_id, case.redirect_uri, accept="application/json"
    )
    assert_refusal_json(as_json, case.rule, error=case.error)
    assert [e["rule"] for e in decisions(gateway)] == [case.rule, case.rule]

    assert registrations(gateway) == []
    assert await cimd_upstream.count() == before
    if case.no_connection:
        assert documents.connections == 0
    if case.never_fetched is not None:
        assert documents.hits_of(case.never_fetched(documents)) == 0


async def test_a_url_client_id_never_bridged_gets_401_at_the_token_endpoint(
    cimd_upstream, gateway_factory, cimd_authority, documents, session
):
    """A token request naming a URL for which no client was bridged (no authorization
    request came first): 401 ``invalid_client`` as JSON, nothing registered upstream."""
    gateway = await start_gateway(gateway_factory, cimd_upstream, cimd_authority)
    url = doc()(documents)
    before = await cimd_upstream.count()

    token = await token_request(session, gateway, url)
    assert token.status == 401, token
    assert token.headers["Content-Type"].startswith("application/json")
    body = token.json()
    assert body["error"] == "invalid_client", body
    [event] = decisions(gateway)
    assert (event["endpoint"], event["decision"], event["status"]) == ("token", "denied", 401)
    assert event["rule"] == "cimd.not_bridged"
    assert registrations(gateway) == []
    assert await cimd_upstream.count() == before


async def test_a_hostile_document_is_refused_at_the_token_endpoint(
    cimd_upstream, gateway_factory, cimd_authority, documents, session
):
    """At the token endpoint a refused document is a 401 ``invalid_client`` naming the
    rule (RFC 6749 §5.2), never forwarded."""
    gateway = await start_gateway(gateway_factory, cimd_upstream, cimd_authority)
    url = doc(client_secret="s3cret")(documents)
    token = await token_request(session, gateway, url)
    assert_refusal_json(token, "cimd.shared_secret", status=401)
    [event] = decisions(gateway)
    assert (event["endpoint"], event["rule"]) == ("token", "cimd.shared_secret")


async def test_a_post_authorization_request_checks_its_redirect_uri_too(
    cimd_upstream, gateway_factory, cimd_authority, documents, session
):
    """An authorization request may come as a form POST (OpenID Connect Core §3.1.2.1, and
    the bridge rewrites ``client_id`` in such bodies): its ``redirect_uri`` in the body must
    be one of the document's, as in a query; a foreign one is the gateway's 400 page
    (``cimd.redirect_uri_mismatch``) before anything is bridged, not something left to the
    upstream (which may be lenient, or, as this one, not take POST at all)."""
    gateway = await start_gateway(gateway_factory, cimd_upstream, cimd_authority)
    url = doc()(documents)
    before = await cimd_upstream.count()
    form = authorization_params(url, EVIL_CB)
    async with session.post(gateway.url + "/auth", data=form, allow_redirects=False) as response:
        text = await response.text()
        assert response.status == 400, text
        assert "Location" not in response.headers
    [event] = decisions(gateway)
    assert (event["decision"], event["rule"]) == ("denied", "cimd.redirect_uri_mismatch"), event
    assert "(cimd.redirect_uri_mismatch)" in text
    assert registrations(gateway) == []
    assert await cimd_upstream.count() == before


async def test_a_request_naming_a_url_and_another_client_is_refused(
    cimd_upstream, gateway_factory, cimd_authority, documents, session
):
    """A URL client_id in the query and another client in the body (or Basic
    authentication) would let one of them be judged and the other used: refused outright,
    before any fetch."""
    gateway = await start_gateway(gateway_factory, cimd_upstream, cimd_authority)
    url = doc()(documents)
    data = {
        "grant_type": "authorization_code",
        "code": "x",
        "code_verifier": "v" * 43,
        "client_id": "some-registered-client",
    }
    async with session.post(
        gateway.url + "/token", params={"client_id": url}, data=data
    ) as response:
        body = await response.json(content_type=None)
        assert response.status == 400, body
    assert body["error_description"].endswith("(rule request.malformed)"), body
    assert documents.connections == 0


async def test_bridged_registrations_count_against_the_policys_rate_limits(
    cimd_upstream, gateway_factory, cimd_authority, documents, session
):
    """A bridged client is registered "through the same guarded path as a registration"
    (docs/cimd.md): a caller presenting one new document URL after another (a wildcard DNS
    name serves any number) is held to the policy's registration rate limits, so it cannot
    create upstream clients faster than it could by calling /reg; the refusal is the
    gateway's page, never a redirect."""
    policy = {
        **OPEN,
        "rate_limits": [
            {"name": "per-ip", "key": "client_ip", "limit": "2/minute", "count": "registrations"}
        ],
    }
    gateway = await start_gateway(gateway_factory, cimd_upstream, cimd_authority, policy=policy)
    before = await cimd_upstream.count()
    pages = []
    for index in range(3):
        url = doc(f"/oauth/flood-{index}.json")(documents)
        pages.append(await authorize(session, gateway, url))
    assert [p.status for p in pages[:2]] == [303, 303], pages
    assert "Location" not in pages[2].headers, pages[2]
    assert "(rate_limit.per-ip)" in pages[2].text, pages[2].text
    assert await cimd_upstream.count() == before + 2
    assert len([r for r in registrations(gateway) if r["decision"] == "allowed"]) == 2


async def test_bridged_clients_count_against_the_policys_quotas(
    cimd_upstream, gateway_factory, cimd_authority, documents, session
):
    """docs/cimd.md: bridged clients are registered so that "approval, cleanup and quotas
    apply".  With one client per vendor (``on_full: reject``), a second document of the
    same client name is refused by the quota rule, as a second registration would be, and
    nothing more is created upstream."""
    policy = {**OPEN, "quotas": {"max_clients_per_vendor": 1, "on_full": "reject"}}
    gateway = await start_gateway(gateway_factory, cimd_upstream, cimd_authority, policy=policy)
    before = await cimd_upstream.count()
    first = await authorize(session, gateway, doc("/oauth/one.json")(documents))
    assert first.status == 303, first
    second = await authorize(session, gateway, doc("/oauth/two.json")(documents))
    assert "Location" not in second.headers, second
    assert "(quota.max_clients_per_vendor)" in second.text, second.text
    assert await cimd_upstream.count() == before + 1
    assert len([r for r in registrations(gateway) if r["decision"] == "allowed"]) == 1


async def test_an_upstream_refusing_the_bridged_registration_is_a_502_never_a_redirect(
    gateway_factory, cimd_authority, documents, session
):
    """The upstream requires an initial access token the gateway was not given: the
    bridged registration fails (``cimd.bridge_failed``, 502), the user gets no redirect,
    the attempt is audited as a registration with ``source: cimd``, and no mapping is kept
    (the next request tries again)."""
    port = free_port()
    server = UpstreamServer().start(
        issuer=f"http://127.0.0.1:{port}", registration_initial_access_token="iat-not-given"
    )
    try:
        gateway = await start_gateway(
            gateway_factory, FlowUpstream(server, port), cimd_authority, port=port
        )
        url = doc()(documents)
        page = await authorize(session, gateway, url)
        assert page.status == 502, page
        assert "Location" not in page.headers
        assert page.json()["error_description"].endswith("(rule cimd.bridge_failed)")
        [registration] = registrations(gateway)
        assert (registration["source"], registration["rule"]) == ("cimd", "cimd.bridge_failed")
        assert registration["upstream_status"] in (400, 401, 403)
        [event] = decisions(gateway)
        assert (event["decision"], event["rule"]) == ("error", "cimd.bridge_failed")
        assert await server.aclient_count() == 0
    finally:
        server.stop()
