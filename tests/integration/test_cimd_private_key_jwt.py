"""CIMD bridge mode for ``private_key_jwt`` clients (ChatGPT's shape): the gateway verifies
the client's assertions itself and authenticates upstream as the bridged client.

Real parts: node-oidc-provider with no CIMD, the gateway in-process, the HTTPS document
server with a test CA serving the document and its ``jwks_uri``, assertions signed with
``joserfc``.  The upstream client is a ``client_secret_basic`` one whose secret only the
gateway holds (sealed); the upstream never sees the client's keys or assertions.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any
from urllib.parse import quote

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey

from gateway.cimd.bridge import Mapping, mapping_key
from tests.support import cimd_gateway
from tests.support.cimd_gateway import (
    CALLBACK,
    Page,
    assert_refusal_json,
    assert_refusal_page,
    authorize,
    core,
    decisions,
    document,
    registrations,
    start_gateway,
)
from tests.support.lifecycle import SHARED_KEY
from tests.support.oauth_flow import JWT_BEARER, authorization_code_flow, refresh_access_token
from tests.support.upstream import free_port

pytestmark = pytest.mark.integration


HOST = "other-client.example.com"
PATH = "/oauth/client.json"
JWKS_PATH = "/oauth/jwks.json"


class SigningClient:
    """A ChatGPT-shaped client (on a host of its own: chatgpt.com is a managed client's):
    its document names ``jwks_uri``; it signs assertions."""

    def __init__(self, documents: Any, *, inline: bool = False, **changes: Any) -> None:
        self.documents = documents
        self.url = documents.url(HOST, PATH)
        self.jwks_url = documents.url(HOST, JWKS_PATH)
        self.key = ECKey.generate_key("P-256", parameters={"kid": "k1", "use": "sig"})
        keys = {"keys": [self.key.as_dict(private=False)]}
        fields: dict[str, Any] = {
            "token_endpoint_auth_method": "private_key_jwt",
            "client_name": "Example Agent Platform",
            **({"jwks": keys} if inline else {"jwks_uri": self.jwks_url}),
            **changes,
        }
        documents.serve(HOST, PATH, document(self.url, **fields))
        documents.serve(HOST, JWKS_PATH, keys)

    def rotate(self) -> None:
        """A new key (a new kid) in the served key set; the old one is gone."""
        self.key = ECKey.generate_key("P-256", parameters={"kid": "k2", "use": "sig"})
        self.documents.serve(HOST, JWKS_PATH, {"keys": [self.key.as_dict(private=False)]})

    def assertion(self, audience: str, *, key: Any = None, alg: str = "ES256", **claims: Any):
        now = int(time.time())
        body = {
            "iss": self.url,
            "sub": self.url,
            "aud": audience,
            "iat": now,
            "exp": now + 60,
            "jti": uuid.uuid4().hex,
            **claims,
        }
        body = {k: v for k, v in body.items() if v is not None}
        signer = self.key if key is None else key
        header = {"alg": alg, "kid": signer.kid} if signer.kid else {"alg": alg}
        return jwt.encode(header, body, signer, algorithms=[alg])


def token_endpoint(gateway: Any) -> str:
    return gateway.url + "/token"


async def post_token(
    session: Any, gateway: Any, data: dict[str, str], headers: dict[str, str] | None = None
) -> Page:
    async with session.post(token_endpoint(gateway), data=data, headers=headers) as response:
        return Page(response.status, dict(response.headers), await response.text())


def grant(client: SigningClient, assertion: str | None, **extra: str) -> dict[str, str]:
    """A token request with a code nobody issued: the gateway decides before the upstream
    could say ``invalid_grant``."""
    data = {
        "grant_type": "authorization_code",
        "code": "not-a-code",
        "redirect_uri": CALLBACK,
        "code_verifier": "v" * 43,
        "client_id": client.url,
    }
    if assertion is not None:
        data.update(client_assertion_type=JWT_BEARER, client_assertion=assertion)
    data.update(extra)
    return {k: v for k, v in data.items() if v != ""}


async def bridged(gateway: Any, session: Any, client: SigningClient) -> Mapping:
    page = await authorize(session, gateway, client.url)
    assert page.status == 303, page
    raw = await core(gateway).storage.get(mapping_key(None, client.url))
    mapping = Mapping.from_bytes(raw)
    assert mapping is not None
    return mapping


async def use_twice(
    session: Any, client: SigningClient, audience: str, first: Any, second: Any
) -> Page:
    """One assertion sent to ``first`` then ``second``: the first use reaches the upstream
    (which says the made-up code is no good), the second is refused; returns it."""
    assertion = client.assertion(audience)
    answer = await post_token(session, first, grant(client, assertion))
    assert answer.status == 400 and answer.json()["error"] == "invalid_grant", answer
    again = await post_token(session, second, grant(client, assertion))
    assert_refusal_json(again, "cimd.client_auth", status=401)
    return again


def all_events_text(gateway: Any) -> str:
    return json.dumps(gateway.events(), sort_keys=True)


# --------------------------------------------------------------------------- the flow


async def test_a_private_key_jwt_client_gets_tokens_with_signed_assertions(
    cimd_upstream, gateway_factory, cimd_authority, documents
):
    """Code flow + token + refresh, each token request authenticated with a fresh
    assertion: the upstream client is a confidential (``client_secret_basic``) one, its
    secret is kept sealed in the mapping and appears in no event; the document's keys are
    fetched once (cached)."""
    gateway = await start_gateway(gateway_factory, cimd_upstream, cimd_authority)
    client = SigningClient(documents)
    before = await cimd_upstream.count()

    tokens = await authorization_code_flow(
        gateway.url, client.url, CALLBACK, client_assertion=client.assertion
    )
    assert tokens["access_token"] and tokens["refresh_token"], tokens
    refreshed = await refresh_access_token(
        gateway.url, client.url, tokens["refresh_token"], client_assertion=client.assertion
    )
    assert refreshed["access_token"]
    assert await cimd_upstream.count() == before + 1

    [registration] = registrations(gateway)
    assert registration["source"] == "cimd"
    assert registration["token_endpoint_auth_method"] == "client_secret_basic"
    mapping = Mapping.from_bytes(await core(gateway).storage.get(mapping_key(None, client.url)))
    assert mapping is not None and mapping.auth_method == "private_key_jwt"
    secret = core(gateway).sealer.unseal(mapping.sealed_secret)
    assert secret and secret not in (mapping.sealed_secret or "")
    assert secret not in all_events_text(gateway)

    seen = decisions(gateway)
    assert [(e["endpoint"], e["decision"]) for e in seen] == [
        ("authorization", "allowed"),
        ("token", "allowed"),
        ("token", "allowed"),
    ]
    assert documents.hits_of(client.jwks_url) == 1


async def test_an_inline_jwks_document_works_too(
    cimd_upstream, gateway_factory, cimd_authority, documents
):
    gateway = await start_gateway(gateway_factory, cimd_upstream, cimd_authority)
    client = SigningClient(documents, inline=True)
    tokens = await authorization_code_flow(
        gateway.url, client.url, CALLBACK, client_assertion=client.assertion
    )
    assert tokens["access_token"]
    assert documents.hits_of(client.jwks_url) == 0


async def test_a_rotated_key_is_found_by_fetching_the_key_set_again(
    cimd_upstream, gateway_factory, cimd_authority, documents, session
):
    """The cached key set lacks the assertion's new kid: fetched once more, the new key
    verifies.  A kid no fetch finds is refused after exactly one more fetch."""
    gateway = await start_gateway(gateway_factory, cimd_upstream, cimd_authority)
    client = SigningClient(documents)
    await authorization_code_flow(
        gateway.url, client.url, CALLBACK, client_assertion=client.assertion
    )
    assert documents.hits_of(client.jwks_url) == 1
    client.rotate()
    tokens = await authorization_code_flow(
        gateway.url, client.url, CALLBACK, client_assertion=client.assertion
    )
    assert tokens["access_token"]
    assert documents.hits_of(client.jwks_url) == 2

    stranger = ECKey.generate_key("P-256", parameters={"kid": "k9"})
    answer = await post_token(
        session, gateway, grant(client, client.assertion(token_endpoint(gateway), key=stranger))
    )
    assert_refusal_json(answer, "cimd.client_auth", status=401)
    assert documents.hits_of(client.jwks_url) == 3


# --------------------------------------------------------------------------- refusals


async def test_a_replayed_assertion_is_refused(
    cimd_upstream, gateway_factory, cimd_authority, documents, session
):
    """RFC 7523 §3: a ``jti`` is good for one request.  The first use reaches the upstream
    (which says the made-up code is no good), the second never does."""
    gateway = await start_gateway(gateway_factory, cimd_upstream, cimd_authority)
    client = SigningClient(documents)
    await bridged(gateway, session, client)
    second = await use_twice(session, client, token_endpoint(gateway), gateway, gateway)
    assert "jti" in second.json()["error_description"]


def _bad_assertions(client: SigningClient, aud: str) -> dict[str, str | None]:
    rsa = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    secret = OctKey.generate_key(256)
    now = int(time.time())
    header = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    claims = {"iss": client.url, "sub": client.url, "aud": aud, "exp": now + 60, "jti": "x"}
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    good = client.assertion(aud)
    head, _body, signature = good.split(".")
    return {
        "missing": None,
        "another audience": client.assertion("https://other-as.example.com/token"),
        "expired": client.assertion(aud, exp=now - 120, iat=now - 180),
        "too long-lived": client.assertion(aud, exp=now + 3600),
        "no exp": client.assertion(aud, exp=None),
        "no jti": client.assertion(aud, jti=None),
        "issued in the future": client.assertion(aud, iat=now + 600),
        "iss is not the client": client.assertion(
            aud, iss="https://other-client.example.com/other.json"
        ),
        "signed by a stranger with the same kid": client.assertion(aud, key=rsa, alg="RS256"),
        "HS256 with a made-up key": client.assertion(aud, key=secret, alg="HS256"),
        "alg none": f"{header}.{payload}.",
        "tampered claims": f"{head}.{payload}.{signature}",
        "not a JWS": "not-a-jwt",
        "five parts (JWE)": "a.b.c.d.e",
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "another audience",
        "expired",
        "too long-lived",
        "no exp",
        "no jti",
        "issued in the future",
        "iss is not the client",
        "signed by a stranger with the same kid",
        "HS256 with a made-up key",
        "alg none",
        "tampered claims",
        "not a JWS",
        "five parts (JWE)",
    ],
)
async def test_a_bad_assertion_is_refused_before_the_upstream(
    cimd_upstream, gateway_factory, cimd_authority, documents, session, case
):
    gateway = await start_gateway(gateway_factory, cimd_upstream, cimd_authority)
    client = SigningClient(documents)
    await bridged(gateway, session, client)
    assertion = _bad_assertions(client, token_endpoint(gateway))[case]
    answer = await post_token(session, gateway, grant(client, assertion))
    assert_refusal_json(answer, "cimd.client_auth", status=401)
    [event] = decisions(gateway, endpoint="token")
    assert (event["decision"], event["rule"]) == ("denied", "cimd.client_auth")


@pytest.mark.parametrize(
    ("extra", "headers"),
    [
        ({"client_assertion_type": "urn:example:other"}, None),
        ({"client_secret": "guess"}, None),
        ({}, "basic"),
        ({}, {"Authorization": "Bearer something"}),
    ],
    ids=[
        "wrong assertion type",
        "a client_secret too",
        "HTTP Basic as the URL too",
        "a bearer token too",
    ],
)
async def test_other_client_credentials_are_refused(
    cimd_upstream, gateway_factory, cimd_authority, documents, session, extra, headers
):
    """RFC 6749 §2.3: one authentication method per request, and for this client the
    document's."""
    gateway = await start_gateway(gateway_factory, cimd_upstream, cimd_authority)
    client = SigningClient(documents)
    await bridged(gateway, session, client)
    if headers == "basic":
        user = quote(client.url, safe="")
        headers = {"Authorization": "Basic " + base64.b64encode(f"{user}:x".encode()).decode()}
    data = grant(client, client.assertion(token_endpoint(gateway)), **extra)
    answer = await post_token(session, gateway, data, headers)
    assert_refusal_json(answer, "cimd.client_auth", status=401)


async def test_an_assertion_about_another_subject_is_refused(
    cimd_upstream, gateway_factory, cimd_authority, documents, session
):
    """``sub`` names another client than ``client_id``: the request names two clients,
    refused before any of them is looked at."""
    gateway = await start_gateway(gateway_factory, cimd_upstream, cimd_authority)
    client = SigningClient(documents)
    await bridged(gateway, session, client)
    assertion = client.assertion(token_endpoint(gateway), sub="someone-else")
    answer = await post_token(session, gateway, grant(client, assertion))
    assert_refusal_json(answer, "request.malformed", error="invalid_request")


async def test_the_issuer_is_an_accepted_audience(
    cimd_upstream, gateway_factory, cimd_authority, documents, session
):
    """RFC 7523 §3 and its successor: the issuer identifies the server as well as the
    token endpoint URL does."""
    gateway = await start_gateway(gateway_factory, cimd_upstream, cimd_authority)
    client = SigningClient(documents)
    await bridged(gateway, session, client)
    answer = await post_token(session, gateway, grant(client, client.assertion(gateway.url)))
    assert answer.status == 400 and answer.json()["error"] == "invalid_grant", answer


async def test_a_public_clients_credentials_are_refused(
    cimd_upstream, gateway_factory, cimd_authority, documents, session
):
    """A ``none`` document's client sends no credentials; an assertion is not passed on
    to an upstream that knows nothing of the URL."""
    gateway = await start_gateway(gateway_factory, cimd_upstream, cimd_authority)
    client = SigningClient(documents, token_endpoint_auth_method="none", jwks_uri=None)
    await bridged(gateway, session, client)
    answer = await post_token(
        session, gateway, grant(client, client.assertion(token_endpoint(gateway)))
    )
    assert_refusal_json(answer, "cimd.client_auth", status=401)


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"jwks_uri": None}, "cimd.jwks"),
        ({"jwks": {"keys": []}}, "jwks.conflict"),
        ({"jwks_uri": None, "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}, "cimd.jwks"),
        ({"jwks_uri": None, "jwks": {"keys": []}}, "cimd.jwks"),
    ],
    ids=["no keys", "both jwks and jwks_uri", "a symmetric key", "an empty key set"],
)
async def test_a_document_whose_keys_cannot_work_bridges_nothing(
    cimd_upstream, gateway_factory, cimd_authority, documents, session, changes, rule
):
    gateway = await start_gateway(gateway_factory, cimd_upstream, cimd_authority)
    before = await cimd_upstream.count()
    client = SigningClient(documents, **changes)
    page = await authorize(session, gateway, client.url)
    assert_refusal_page(page, rule)
    assert await cimd_upstream.count() == before
    assert registrations(gateway) == []


async def test_a_key_set_with_private_key_material_is_refused(
    cimd_upstream, gateway_factory, cimd_authority, documents, session
):
    """A ``jwks_uri`` publishing a private key: the client is compromised, refused."""
    gateway = await start_gateway(gateway_factory, cimd_upstream, cimd_authority)
    client = SigningClient(documents)
    await bridged(gateway, session, client)
    documents.serve(HOST, JWKS_PATH, {"keys": [client.key.as_dict(private=True)]})
    core(gateway).cimd_fetcher.invalidate(client.jwks_url)
    answer = await post_token(
        session, gateway, grant(client, client.assertion(token_endpoint(gateway)))
    )
    assert_refusal_json(answer, "cimd.jwks", status=401)


async def test_without_a_sealing_key_on_shared_storage_it_is_not_bridged(
    cimd_upstream, gateway_factory, cimd_authority, documents, session, redis_storage
):
    """No ``registry.key_env`` on Redis: the gateway cannot keep the bridged client's
    secret, so it says so instead of creating a client it could never use."""
    gateway = await start_gateway(
        gateway_factory,
        cimd_upstream,
        cimd_authority,
        storage=redis_storage,
        registry_keys=(),
    )
    before = await cimd_upstream.count()
    client = SigningClient(documents)
    page = await authorize(session, gateway, client.url)
    assert_refusal_page(page, "cimd.unsupported_auth")
    assert await cimd_upstream.count() == before


async def test_a_replay_at_another_replica_is_refused(
    cimd_upstream, gateway_factory, cimd_authority, documents, session, redis_storage
):
    """The ``jti`` is remembered in shared storage: two replicas behind one public URL
    accept an assertion once between them."""
    port = cimd_upstream.port
    settings = {
        "storage": redis_storage,
        "registry_keys": (SHARED_KEY,),
        "public_url": f"http://127.0.0.1:{port}",
    }
    a = await start_gateway(gateway_factory, cimd_upstream, cimd_authority, **settings)
    b = await start_gateway(
        gateway_factory, cimd_upstream, cimd_authority, port=free_port(), **settings
    )
    client = SigningClient(documents)
    await bridged(a, session, client)
    await use_twice(session, client, token_endpoint(a), b, a)


# --------------------------------------------------------------------------- other endpoints


async def test_pushed_authorization_and_revocation_take_assertions_too(
    cimd_upstream, gateway_factory, cimd_authority, documents, session
):
    """PAR (RFC 9126: the issuer is an accepted audience there) with a signed assertion,
    then the authorization request by ``request_uri`` through login to tokens, then
    revocation (RFC 7009) of the refresh token with another assertion: every step
    authenticated by the gateway, each ``cimd.decision`` allowed."""
    gateway = await start_gateway(gateway_factory, cimd_upstream, cimd_authority)
    client = SigningClient(documents)
    await bridged(gateway, session, client)
    async with session.get(gateway.url + "/.well-known/openid-configuration") as response:
        metadata = await response.json()
    par = metadata["pushed_authorization_request_endpoint"]
    pushed = {
        "response_type": "code",
        "client_id": client.url,
        "redirect_uri": CALLBACK,
        "scope": "openid",
        "state": "s",
        "code_challenge": cimd_gateway.PKCE_CHALLENGE,
        "code_challenge_method": "S256",
        "client_assertion_type": JWT_BEARER,
        "client_assertion": client.assertion(gateway.url),
    }
    async with session.post(par, data=pushed) as response:
        answer = await response.json()
        assert response.status == 201, answer
    params = {"client_id": client.url, "request_uri": answer["request_uri"]}
    async with session.get(gateway.url + "/auth", params=params, allow_redirects=False) as r:
        assert r.status == 303 and "/interaction/" in r.headers["Location"], r.headers

    tokens = await authorization_code_flow(
        gateway.url, client.url, CALLBACK, client_assertion=client.assertion
    )
    revoke = {
        "token": tokens["refresh_token"],
        "token_type_hint": "refresh_token",
        "client_id": client.url,
        "client_assertion_type": JWT_BEARER,
        "client_assertion": client.assertion(metadata["revocation_endpoint"]),
    }
    async with session.post(metadata["revocation_endpoint"], data=revoke) as response:
        assert response.status == 200, await response.text()
    assert all(e["decision"] == "allowed" for e in decisions(gateway)), decisions(gateway)


async def test_a_pushed_request_for_a_foreign_redirect_uri_is_refused(
    cimd_upstream, gateway_factory, cimd_authority, documents, session
):
    """The redirect URI of a pushed request is checked against the document's, as at the
    authorization endpoint."""
    gateway = await start_gateway(gateway_factory, cimd_upstream, cimd_authority)
    client = SigningClient(documents)
    await bridged(gateway, session, client)
    pushed = {
        "response_type": "code",
        "client_id": client.url,
        "redirect_uri": "https://evil.example.com/cb",
        "client_assertion_type": JWT_BEARER,
        "client_assertion": client.assertion(gateway.url),
    }
    async with session.post(gateway.url + "/request", data=pushed) as response:
        page = Page(response.status, dict(response.headers), await response.text())
    assert_refusal_json(page, "cimd.redirect_uri_mismatch", status=401)
