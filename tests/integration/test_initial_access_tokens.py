"""Initial access tokens (RFC 7591 §3) against the real upstream, on both stores: the
policy's tokens, the gateway's own token for the upstream, and the admin API that issues
tokens at run time.

Why each matters: a token is a credential.  A registration endpoint that lets an unknown,
expired or used-up token through, that counts a use for a client never created, or that
passes the caller's credential on to the authorization server, defeats the point of having
one.  And a credential must never be written down: not in the audit trail, not in the
operational log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.audit.logging import configure_logging
from gateway.policy.loader import load_policy
from tests.support.controls import (
    CLIENT,
    OPEN,
    POLICY_REFUSED,
    POLICY_REFUSED_RULE,
    STORAGES,
    UPSTREAM_REFUSED,
    Answer,
    assert_refused,
    bearer,
    call,
    client,
    event_of,
    register,
    sha256,
    storage_uri,
)
from tests.support.gateway import RunningGateway
from tests.support.keycloak import REGISTRATION_PATH, KeycloakStandIn
from tests.support.rawhttp import Reply, raw_one

pytestmark = pytest.mark.integration

TOKEN = "itest-partner-token-7c1f0e"
ADMIN_TOKEN = "itest-admin-token-0123456789abcdef0123456789"
ADMIN = "/-/admin/initial-access-tokens"
ADMIN_EVENT = "admin.initial_access_token"
WWW_AUTHENTICATE = 'Bearer error="invalid_token"'


@pytest.fixture(params=STORAGES)
def storage(request: pytest.FixtureRequest) -> str:
    return storage_uri(request)


def token_entry(name: str = "partner", token: str = TOKEN, **fields: Any) -> dict[str, Any]:
    return {"name": name, "sha256": sha256(token), **fields}


def with_tokens(*entries: dict[str, Any], required: bool = False, **policy: Any) -> dict:
    """The open policy with these initial access tokens (and other top-level keys)."""
    tokens = {"required": required, "tokens": list(entries)}
    return {**OPEN, "initial_access_tokens": tokens, **policy}


def assert_invalid_token(answer: Answer | Reply, rule: str) -> None:
    """401 ``invalid_token`` with the RFC 6750 §3 challenge, naming ``rule``."""
    if isinstance(answer, Reply):
        assert answer.status == 401, answer
        assert answer.header("WWW-Authenticate") == WWW_AUTHENTICATE, answer
        body = answer.json()
        assert body["error"] == "invalid_token", body
        assert body["error_description"].endswith(f"(rule {rule})"), body
        return
    assert_refused(answer, 401, "invalid_token", rule)
    assert answer.headers["WWW-Authenticate"] == WWW_AUTHENTICATE


async def raw_register(gateway: RunningGateway, *header_lines: str) -> Reply:
    """A registration with header lines exactly as given (two ``Authorization`` lines, which
    an HTTP client would merge or refuse)."""
    payload = json.dumps(CLIENT).encode()
    head = [
        "POST /reg HTTP/1.1",
        f"Host: {gateway.url.split('://', 1)[1]}",
        "Connection: close",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
        *header_lines,
    ]
    return await raw_one(gateway, ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)


# ---------------------------------------------------------------------- the policy's tokens


async def test_a_required_token_that_is_missing_is_refused(
    upstream, gateway_factory, session, storage
):
    """``required: true``: a registration without a token is 401 and creates nothing; with
    the token it goes through, and the audit event names the token."""
    gateway = await gateway_factory(
        upstream.url, policy=with_tokens(token_entry(), required=True), storage=storage
    )
    before = await upstream.aclient_count(session)
    missing = await register(session, gateway)
    assert_invalid_token(missing, "initial_access_token.missing")
    assert "requires an initial access token" in missing.body["error_description"]
    event = event_of(gateway, missing)
    assert (event["decision"], event["status"]) == ("denied", 401)
    assert event["upstream_status"] is None
    assert await upstream.aclient_count(session) == before

    ok = await register(session, gateway, headers=bearer(TOKEN))
    assert ok.status == 201, ok
    assert event_of(gateway, ok)["initial_access_token_name"] == "partner"
    assert await upstream.aclient_count(session) == before + 1


async def test_tokens_are_optional_unless_required(upstream, gateway_factory, session, storage):
    gateway = await gateway_factory(
        upstream.url, policy=with_tokens(token_entry()), storage=storage
    )
    anonymous = await register(session, gateway)
    assert anonymous.status == 201, anonymous
    assert event_of(gateway, anonymous)["initial_access_token_name"] is None


@pytest.mark.parametrize(
    "authorization",
    [
        "bearer " + TOKEN,  # the scheme is case-insensitive (RFC 9110 §11.1)
        "BEARER " + TOKEN,
        "Bearer  " + TOKEN,  # 1*SP (RFC 6750 §2.1)
    ],
)
async def test_well_formed_spellings_of_bearer_are_accepted(
    upstream, gateway_factory, session, storage, authorization
):
    gateway = await gateway_factory(
        upstream.url, policy=with_tokens(token_entry(), required=True), storage=storage
    )
    answer = await register(session, gateway, headers={"Authorization": authorization})
    assert answer.status == 201, answer


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic aXRlc3Q6c2VjcmV0",
        "Bearer",
        "Bearer ",
        f"Bearer {TOKEN} extra",
        f"Bearer {TOKEN[:8]} {TOKEN[8:]}",
        f"Bearer {TOKEN},",
        f"Token {TOKEN}",
        TOKEN,
        f"Bearer\t{TOKEN}",
    ],
)
async def test_a_malformed_authorization_is_refused_even_when_tokens_are_optional(
    upstream, gateway_factory, session, storage, authorization
):
    """An ``Authorization`` header that is not exactly one ``Bearer`` token (RFC 6750 §2.1)
    is refused, also when no token is required: a caller sending credentials the gateway
    cannot read is misconfigured or probing, and the header must not be ignored."""
    gateway = await gateway_factory(
        upstream.url, policy=with_tokens(token_entry()), storage=storage
    )
    reply = await raw_register(gateway, f"Authorization: {authorization}")
    assert_invalid_token(reply, "initial_access_token.malformed")
    [event] = gateway.registrations()
    assert (event["rule"], event["status"]) == ("initial_access_token.malformed", 401)
    assert event["upstream_status"] is None


async def test_two_authorization_headers_are_malformed(upstream, gateway_factory, storage):
    """Two credentials (even twice the same valid one) are not one token."""
    gateway = await gateway_factory(
        upstream.url, policy=with_tokens(token_entry()), storage=storage
    )
    reply = await raw_register(
        gateway, f"Authorization: Bearer {TOKEN}", f"Authorization: Bearer {TOKEN}"
    )
    assert_invalid_token(reply, "initial_access_token.malformed")
    assert len(gateway.registrations()) == 1


@pytest.mark.parametrize(
    "presented",
    ["dcrg_never-issued-token", sha256(TOKEN), TOKEN.upper(), TOKEN + "x"],
    ids=["never-issued", "the-hash-itself", "other-case", "longer"],
)
async def test_an_unknown_token_is_refused_even_when_tokens_are_optional(
    upstream, gateway_factory, session, storage, presented
):
    """A bearer token that is none of the policy's (nor issued) is refused; the hash a
    policy lists is not itself a credential."""
    gateway = await gateway_factory(
        upstream.url, policy=with_tokens(token_entry()), storage=storage
    )
    before = await upstream.aclient_count(session)
    answer = await register(session, gateway, headers=bearer(presented))
    assert_invalid_token(answer, "initial_access_token.unknown")
    event = event_of(gateway, answer)
    assert event["initial_access_token_name"] is None
    assert await upstream.aclient_count(session) == before


async def test_an_expired_token_is_refused(upstream, gateway_factory, session, storage):
    """A token whose ``expires`` has passed is 401 ``expired``; one that expires later works.
    The audit event names the expired token (its owner is who to call), never the token."""
    policy = with_tokens(
        token_entry("old-partner", "itest-old-token", expires="2020-01-01T00:00:00Z"),
        token_entry("new-partner", "itest-new-token", expires="2099-01-01T00:00:00Z"),
    )
    gateway = await gateway_factory(upstream.url, policy=policy, storage=storage)
    expired = await register(session, gateway, headers=bearer("itest-old-token"))
    assert_invalid_token(expired, "initial_access_token.expired")
    assert "'old-partner'" in expired.body["error_description"]
    assert (await register(session, gateway, headers=bearer("itest-new-token"))).status == 201
    assert event_of(gateway, expired)["initial_access_token_name"] == "old-partner"


async def test_a_used_up_token_is_refused(upstream, gateway_factory, session, storage):
    """``max_uses: N``: N registrations, then 401 ``used_up``; the audit event of the
    refusal names the token."""
    gateway = await gateway_factory(
        upstream.url, policy=with_tokens(token_entry(max_uses=2)), storage=storage
    )
    for _ in range(2):
        assert (await register(session, gateway, headers=bearer(TOKEN))).status == 201
    used_up = await register(session, gateway, headers=bearer(TOKEN))
    assert_invalid_token(used_up, "initial_access_token.used_up")
    assert "'partner'" in used_up.body["error_description"]
    assert event_of(gateway, used_up)["initial_access_token_name"] == "partner"


async def test_concurrent_registrations_never_exceed_max_uses(
    upstream, gateway_factory, session, storage
):
    """3N registrations at once with a token of N uses: exactly N clients are created.  The
    use is reserved atomically before forwarding, so no two requests both take the last."""
    uses = 3
    gateway = await gateway_factory(
        upstream.url, policy=with_tokens(token_entry(max_uses=uses)), storage=storage
    )
    before = set(upstream.client_ids())
    answers = await asyncio.gather(
        *(register(session, gateway, headers=bearer(TOKEN)) for _ in range(3 * uses))
    )
    assert Counter(a.status for a in answers) == {201: uses, 401: 2 * uses}, answers
    for answer in answers:
        if answer.status == 401:
            assert_invalid_token(answer, "initial_access_token.used_up")
    created = set(upstream.client_ids()) - before
    assert created == {a.body["client_id"] for a in answers if a.status == 201}
    assert len(gateway.registrations()) == 3 * uses


async def test_a_request_the_policy_refuses_does_not_use_the_token(
    upstream, gateway_factory, session, storage
):
    gateway = await gateway_factory(
        upstream.url, policy=with_tokens(token_entry(max_uses=1)), storage=storage
    )
    refused = await register(session, gateway, POLICY_REFUSED, headers=bearer(TOKEN))
    assert_refused(refused, 400, "invalid_redirect_uri", POLICY_REFUSED_RULE)
    assert event_of(gateway, refused)["initial_access_token_name"] == "partner"
    assert (await register(session, gateway, headers=bearer(TOKEN))).status == 201
    assert_invalid_token(
        await register(session, gateway, headers=bearer(TOKEN)), "initial_access_token.used_up"
    )


async def test_a_request_the_upstream_refuses_does_not_use_the_token(
    upstream, gateway_factory, session, storage
):
    gateway = await gateway_factory(
        upstream.url, policy=with_tokens(token_entry(max_uses=1)), storage=storage
    )
    refused = await register(session, gateway, UPSTREAM_REFUSED, headers=bearer(TOKEN))
    assert refused.status == 400 and refused.body["error"] == "invalid_client_metadata", refused
    assert event_of(gateway, refused)["upstream_status"] == 400
    assert (await register(session, gateway, headers=bearer(TOKEN))).status == 201
    assert_invalid_token(
        await register(session, gateway, headers=bearer(TOKEN)), "initial_access_token.used_up"
    )


async def test_a_request_a_rate_limit_refuses_does_not_use_the_token(
    upstream, gateway_factory, session, storage
):
    limits = [{"name": "per-sw", "key": "software_id", "limit": "1/minute"}]
    policy = with_tokens(token_entry(max_uses=2), rate_limits=limits)
    gateway = await gateway_factory(upstream.url, policy=policy, storage=storage)

    async def as_software(software_id: str) -> Answer:
        return await register(session, gateway, client(software_id=software_id), bearer(TOKEN))

    assert (await as_software("itest-a")).status == 201
    limited = await as_software("itest-a")
    assert_refused(limited, 429, "rate_limited", "rate_limit.per-sw")
    assert (await as_software("itest-b")).status == 201
    assert_invalid_token(await as_software("itest-c"), "initial_access_token.used_up")


# ---------------------------------------------------------------------- a token's own policy


def write_policies(tmp_path: Path, **extra: Any) -> tuple[Path, Path]:
    """A main policy allowing ``public.example.com`` and a token whose own policy
    (``partner.yaml``, named relative to the main one) allows ``partner.example.com``."""
    folder = tmp_path / "policies"
    folder.mkdir()
    partner = folder / "partner.yaml"
    partner.write_text(
        "version: 1\nmode: allowlist\nredirect_uris:\n  managed_list: none\n"
        "  allow: ['https://partner.example.com/*']\n",
        encoding="utf-8",
    )
    main = folder / "main.yaml"
    document = {
        "version": 1,
        "mode": "allowlist",
        "redirect_uris": {"managed_list": "none", "allow": ["https://public.example.com/*"]},
        "initial_access_tokens": {"tokens": [token_entry(policy="partner.yaml")]},
        **extra,
    }
    main.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return main, partner


PUBLIC_CLIENT = client(redirect_uris=["https://public.example.com/cb"])
PARTNER_CLIENT = client(redirect_uris=["https://partner.example.com/cb"])


async def test_a_token_with_a_policy_is_judged_by_that_policy(
    upstream, gateway_factory, session, storage, tmp_path
):
    """``policy: partner.yaml``: registrations with the token are judged by the token's
    policy alone (what it allows, and only that), and their audit events name that policy
    and its revision, so a reader knows which rules decided."""
    main, partner = write_policies(tmp_path)
    gateway = await gateway_factory(upstream.url, policy=main, storage=storage)

    anonymous = await register(session, gateway, PARTNER_CLIENT)
    assert_refused(anonymous, 400, "invalid_redirect_uri", "redirect_uri.not_allowed")
    assert (await register(session, gateway, PUBLIC_CLIENT)).status == 201
    with_token = await register(session, gateway, PARTNER_CLIENT, bearer(TOKEN))
    assert with_token.status == 201, with_token
    not_the_tokens = await register(session, gateway, PUBLIC_CLIENT, bearer(TOKEN))
    assert_refused(not_the_tokens, 400, "invalid_redirect_uri", "redirect_uri.not_allowed")

    main_revision = load_policy(main).revision
    for answer in (anonymous,):
        event = event_of(gateway, answer)
        assert (event["policy"], event["policy_revision"]) == (str(main), main_revision)
    for answer in (with_token, not_the_tokens):
        event = event_of(gateway, answer)
        assert event["initial_access_token_name"] == "partner"
        assert event["policy"] == str(partner)
    # The revision of the token's policy is the one that policy has on its own (as
    # `dcr-gateway check` and an audit reader computing it would find): its file and the
    # managed list it was read with.
    partner_revision = load_policy(partner).revision
    assert event_of(gateway, with_token)["policy_revision"] == partner_revision


async def test_the_receiving_policys_limits_apply_to_requests_judged_by_a_tokens_policy(
    upstream, gateway_factory, session, storage, tmp_path
):
    """A token's policy judges, but rate limits stay the receiving policy's: a partner token
    does not escape the endpoint's limits."""
    limits = [{"name": "all", "key": "global", "limit": "2/minute"}]
    main, _ = write_policies(tmp_path, rate_limits=limits)
    gateway = await gateway_factory(upstream.url, policy=main, storage=storage)
    assert (await register(session, gateway, PUBLIC_CLIENT)).status == 201
    assert (await register(session, gateway, PARTNER_CLIENT, bearer(TOKEN))).status == 201
    limited = await register(session, gateway, PARTNER_CLIENT, bearer(TOKEN))
    assert_refused(limited, 429, "rate_limited", "rate_limit.all")


# ---------------------------------------------------------------------- what goes upstream


async def test_the_callers_authorization_never_reaches_the_upstream(
    proxy, gateway_factory, session, storage
):
    """The caller's token was the gateway's to check (RFC 7591 §3); the upstream gets no
    ``Authorization`` at all, unless the gateway has a token of its own for it, which is
    then the only one sent."""
    policy = with_tokens(token_entry())
    plain = await gateway_factory(proxy.url, policy=policy, storage=storage)
    mark = proxy.mark()
    answer = await register(session, plain, headers=bearer(TOKEN))
    assert answer.status == 201, answer
    assert proxy.requests(mark) == ["POST /reg"]
    assert not proxy.saw(TOKEN.encode(), mark)
    assert not proxy.saw(b"\r\nauthorization:", mark)

    own = "itest-gateway-upstream-token"
    gateway = await gateway_factory(
        proxy.url, policy=policy, storage=storage, upstream_initial_access_token=own
    )
    for headers in (bearer(TOKEN), {}):
        mark = proxy.mark()
        answer = await register(session, gateway, headers=headers)
        assert answer.status == 201, answer
        sent = bytes(proxy.sent[mark:]).lower()
        assert sent.count(b"\r\nauthorization:") == 1, sent
        assert f"\r\nauthorization: bearer {own}\r\n".encode() in sent
        assert TOKEN.encode() not in sent


async def test_an_upstream_that_requires_a_token_gets_the_gateways(
    upstream_factory, gateway_factory, session, storage
):
    """An authorization server that only allows authenticated registration, behind an open,
    policed gateway: with ``upstream.initial_access_token`` the gateway registers for
    callers who sent nothing; without it the upstream refuses, and the gateway relays that
    refusal and audits what the upstream said.  A caller who knows the upstream's token
    cannot use it through the gateway: it is no token of the gateway's."""
    own = "itest-upstream-requires-this"
    strict = upstream_factory(registration_initial_access_token=own)
    with_own = await gateway_factory(
        strict.url, policy=OPEN, storage=storage, upstream_initial_access_token=own
    )
    created = await register(session, with_own)
    assert created.status == 201, created
    assert created.body["client_id"] in strict.client_ids()
    assert event_of(with_own, created)["upstream_status"] == 201

    without = await gateway_factory(strict.url, policy=OPEN, storage=storage)
    refused = await register(session, without)
    assert refused.status == 401, refused
    assert refused.body["error"] == "invalid_token"
    event = event_of(without, refused)
    assert event["decision"] == "allowed"  # the gateway's policy allowed it
    assert (event["upstream_status"], event["upstream_error"]) == (401, "invalid_token")
    assert event["client_id"] is None

    wrong = await gateway_factory(
        strict.url, policy=OPEN, storage=storage, upstream_initial_access_token="itest-wrong"
    )
    assert (await register(session, wrong)).status == 401
    assert_invalid_token(
        await register(session, without, headers=bearer(own)), "initial_access_token.unknown"
    )
    assert strict.client_count() == 1


# ---------------------------------------------------------------------- the admin API


def admin(token: str = ADMIN_TOKEN) -> dict[str, str]:
    return bearer(token)


async def issue(session: Any, gateway: RunningGateway, **fields: Any) -> dict[str, Any]:
    answer = await call(session, "POST", gateway.url + ADMIN, fields, admin())
    assert answer.status == 201, answer
    return answer.body


async def listed(session: Any, gateway: RunningGateway) -> list[dict[str, Any]]:
    answer = await call(session, "GET", gateway.url + ADMIN, headers=admin())
    assert answer.status == 200, answer
    assert answer.headers["Cache-Control"] == "no-store"
    return answer.body["tokens"]


def admin_events(gateway: RunningGateway) -> list[dict[str, Any]]:
    return [e for e in gateway.events() if e["event"] == ADMIN_EVENT]


async def test_issue_use_list_and_revoke_a_token(upstream, gateway_factory, session, storage):
    """The whole life of an issued token: shown once, usable for registration, listed with
    its uses but without any secret, revoked, then refused as unknown.  A new token under
    the revoked one's name is a new token, with no uses."""
    gateway = await gateway_factory(
        upstream.url, policy=OPEN, storage=storage, admin_token=ADMIN_TOKEN
    )
    started = time.time()
    created = await call(
        session, "POST", gateway.url + ADMIN, {"name": "partner-x", "expires_in": 3600}, admin()
    )
    assert created.status == 201, created
    assert created.headers["Cache-Control"] == "no-store"
    body = created.body
    secret = body["token"]
    assert secret.startswith("dcrg_") and len(secret) >= 40
    assert body["name"] == "partner-x"
    assert (body["max_uses"], body["uses"], body["tenant"]) == (None, 0, None)
    assert started - 1 <= body["created_at"] <= time.time() + 1
    assert body["expires_at"] - body["created_at"] in (3599, 3600, 3601)

    registered = await register(session, gateway, headers=bearer(secret))
    assert registered.status == 201, registered
    assert event_of(gateway, registered)["initial_access_token_name"] == "partner-x"
    [entry] = await listed(session, gateway)
    assert entry == {k: v for k, v in body.items() if k != "token"} | {"uses": 1}
    assert secret not in str(entry) and sha256(secret) not in str(entry)

    deleted = await call(session, "DELETE", gateway.url + ADMIN + "/partner-x", headers=admin())
    assert deleted.status == 204, deleted
    assert await listed(session, gateway) == []
    assert_invalid_token(
        await register(session, gateway, headers=bearer(secret)), "initial_access_token.unknown"
    )

    again = await issue(session, gateway, name="partner-x")
    assert again["token"] != secret
    assert_invalid_token(
        await register(session, gateway, headers=bearer(secret)), "initial_access_token.unknown"
    )
    assert (await register(session, gateway, headers=bearer(again["token"]))).status == 201
    assert [(t["name"], t["uses"]) for t in await listed(session, gateway)] == [("partner-x", 1)]

    events = admin_events(gateway)
    assert [(e["method"], e["status"], e["rule"]) for e in events] == [
        ("POST", 201, "allow.admin"),
        ("GET", 200, "allow.admin"),
        ("DELETE", 204, "allow.admin"),
        ("GET", 200, "allow.admin"),
        ("POST", 201, "allow.admin"),
        ("GET", 200, "allow.admin"),
    ]
    assert [e.get("token_name") for e in events] == [
        "partner-x",
        None,
        "partner-x",
        None,
        "partner-x",
        None,
    ]
    assert all(e["decision"] == "allowed" for e in events)


async def test_an_issued_token_has_its_max_uses(upstream, gateway_factory, session, storage):
    """``max_uses`` of an issued token holds, also against a burst of concurrent requests,
    and the listing counts the uses."""
    gateway = await gateway_factory(
        upstream.url, policy=OPEN, storage=storage, admin_token=ADMIN_TOKEN
    )
    secret = (await issue(session, gateway, name="burst", max_uses=2))["token"]
    answers = await asyncio.gather(
        *(register(session, gateway, headers=bearer(secret)) for _ in range(6))
    )
    assert Counter(a.status for a in answers) == {201: 2, 401: 4}, answers
    for answer in answers:
        if answer.status == 401:
            assert_invalid_token(answer, "initial_access_token.used_up")
    [entry] = await listed(session, gateway)
    assert (entry["max_uses"], entry["uses"]) == (2, 2)


async def test_an_issued_token_expires(upstream, gateway_factory, session, storage):
    gateway = await gateway_factory(
        upstream.url, policy=OPEN, storage=storage, admin_token=ADMIN_TOKEN
    )
    secret = (await issue(session, gateway, name="short", expires_in=1))["token"]
    assert (await register(session, gateway, headers=bearer(secret))).status == 201
    await asyncio.sleep(1.1)
    assert_invalid_token(
        await register(session, gateway, headers=bearer(secret)), "initial_access_token.expired"
    )


async def test_a_token_for_a_tenant_is_unknown_without_one(
    upstream, gateway_factory, session, storage
):
    """A token issued for a Keycloak realm is refused where there is no realm at all."""
    gateway = await gateway_factory(
        upstream.url, policy=OPEN, storage=storage, admin_token=ADMIN_TOKEN
    )
    secret = (await issue(session, gateway, name="realm-only", tenant="acme"))["token"]
    assert_invalid_token(
        await register(session, gateway, headers=bearer(secret)), "initial_access_token.unknown"
    )


@pytest.fixture(scope="module")
def standin() -> Iterator[KeycloakStandIn]:
    server = KeycloakStandIn().start(realms=("acme", "Customers"))
    try:
        yield server
    finally:
        server.stop()


async def test_a_token_for_one_realm_is_refused_in_another(
    gateway_factory, standin, session, storage
):
    """``tenant: acme`` makes the token valid for realm ``acme`` only; a token without a
    tenant is valid in every realm, whichever policy judges it."""
    gateway = await gateway_factory(
        standin.url,
        profile="keycloak",
        policy=OPEN,
        policies={"Customers": OPEN},
        storage=storage,
        admin_token=ADMIN_TOKEN,
    )
    acme_only = (await issue(session, gateway, name="acme-only", tenant="acme"))["token"]
    anywhere = (await issue(session, gateway, name="anywhere"))["token"]

    async def in_realm(realm: str, token: str) -> Answer:
        path = f"/realms/{realm}{REGISTRATION_PATH}"
        return await register(session, gateway, headers=bearer(token), path=path)

    before = await standin.aclient_count("Customers", session)
    assert (await in_realm("acme", acme_only)).status == 201
    refused = await in_realm("Customers", acme_only)
    assert_invalid_token(refused, "initial_access_token.unknown")
    assert event_of(gateway, refused)["tenant"] == "Customers"
    # Realm names are case-sensitive, so the tenant is too.
    assert_invalid_token(await in_realm("ACME", acme_only), "initial_access_token.unknown")
    assert (await in_realm("acme", anywhere)).status == 201
    assert (await in_realm("Customers", anywhere)).status == 201
    assert await standin.aclient_count("Customers", session) == before + 1


async def test_admin_calls_need_the_admin_token(upstream, gateway_factory, session, storage):
    """Without the admin token (none, another one, a registration token, another scheme)
    every admin call is 401 and changes nothing; each is one audit event."""
    gateway = await gateway_factory(
        upstream.url,
        policy=with_tokens(token_entry()),
        storage=storage,
        admin_token=ADMIN_TOKEN,
    )
    attempts = [
        {},
        admin("itest-not-the-admin-token-0123456789abcdef"),
        admin(TOKEN),
        admin(ADMIN_TOKEN.upper()),
        {"Authorization": f"Basic {ADMIN_TOKEN}"},
        {"Authorization": ADMIN_TOKEN},
        {"X-Admin-Token": ADMIN_TOKEN},
    ]
    for headers in attempts:
        for method, path, body in (
            ("GET", ADMIN, None),
            ("POST", ADMIN, {"name": "sneaky"}),
            ("DELETE", ADMIN + "/sneaky", None),
        ):
            answer = await call(session, method, gateway.url + path, body, headers)
            assert_refused(answer, 401, "invalid_token", "admin.unauthorized")
            assert answer.headers["WWW-Authenticate"] == WWW_AUTHENTICATE
    assert await listed(session, gateway) == []
    events = admin_events(gateway)
    assert len(events) == 3 * len(attempts) + 1
    assert {e["rule"] for e in events[:-1]} == {"admin.unauthorized"}
    assert {e["status"] for e in events[:-1]} == {401}


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE", "PUT"])
async def test_without_an_admin_token_configured_the_admin_api_is_off(
    upstream, gateway_factory, session, storage, method
):
    gateway = await gateway_factory(upstream.url, policy=OPEN, storage=storage)
    for path in (ADMIN, ADMIN + "/anything"):
        body = {"name": "x"} if method in ("POST", "PUT") else None
        answer = await call(session, method, gateway.url + path, body, admin())
        assert_refused(answer, 403, "access_denied", "admin.disabled")
    events = admin_events(gateway)
    assert [(e["rule"], e["status"], e["decision"]) for e in events] == [
        ("admin.disabled", 403, "denied")
    ] * 2


async def test_issuing_a_name_twice_is_a_conflict(upstream, gateway_factory, session, storage):
    gateway = await gateway_factory(
        upstream.url, policy=OPEN, storage=storage, admin_token=ADMIN_TOKEN
    )
    first = await issue(session, gateway, name="twice")
    answer = await call(session, "POST", gateway.url + ADMIN, {"name": "twice"}, admin())
    assert_refused(answer, 409, "invalid_request", "admin.conflict")
    assert "token" not in answer.body
    # The first token is untouched.
    assert (await register(session, gateway, headers=bearer(first["token"]))).status == 201
    assert event_of(gateway, answer)["token_name"] == "twice"


async def test_revoking_an_unknown_name_is_not_found(upstream, gateway_factory, session, storage):
    gateway = await gateway_factory(
        upstream.url, policy=OPEN, storage=storage, admin_token=ADMIN_TOKEN
    )
    answer = await call(session, "DELETE", gateway.url + ADMIN + "/nobody", headers=admin())
    assert_refused(answer, 404, "invalid_request", "admin.not_found")
    event = event_of(gateway, answer)
    assert (event["event"], event["token_name"]) == (ADMIN_EVENT, "nobody")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": None},
        {"name": ""},
        {"name": "Upper-Case"},
        {"name": "with space"},
        {"name": "x" * 65},
        {"name": 7},
        {"name": "ok", "expires_in": 0},
        {"name": "ok", "expires_in": -5},
        {"name": "ok", "expires_in": "3600"},
        {"name": "ok", "expires_in": 1.5},
        {"name": "ok", "expires_in": True},
        {"name": "ok", "expires_in": 10 * 366 * 86400},
        {"name": "ok", "max_uses": 0},
        {"name": "ok", "max_uses": "5"},
        {"name": "ok", "max_uses": False},
        {"name": "ok", "tenant": ""},
        {"name": "ok", "tenant": "a/b"},
        {"name": "ok", "tenant": 5},
        {"name": "ok", "token": "dcrg_chosen-by-the-caller"},
        {"name": "ok", "sha256": "00" * 32},
    ],
)
async def test_an_invalid_issuing_request_is_refused(
    upstream, gateway_factory, session, storage, body
):
    gateway = await gateway_factory(
        upstream.url, policy=OPEN, storage=storage, admin_token=ADMIN_TOKEN
    )
    answer = await call(session, "POST", gateway.url + ADMIN, body, admin())
    assert_refused(answer, 400, "invalid_request", "admin.invalid_request")
    assert await listed(session, gateway) == []
    assert event_of(gateway, answer)["rule"] == "admin.invalid_request"


@pytest.mark.parametrize(
    "raw", [b"{not json", b"[]", b'"partner"', b"", b'{"name": "a", "name": "b"}']
)
async def test_an_issuing_request_that_is_no_json_object_is_an_invalid_admin_request(
    upstream, gateway_factory, session, raw
):
    """A body that is not one JSON object is a bad admin body: 400 ``admin.invalid_request``
    like any other, not a refusal of client metadata (``invalid_client_metadata``, rule
    ``request.*``, "RFC 7591 section 3.1"), which an admin request is not."""
    gateway = await gateway_factory(upstream.url, policy=OPEN, admin_token=ADMIN_TOKEN)
    headers = {**admin(), "Content-Type": "application/json"}
    answer = await call(session, "POST", gateway.url + ADMIN, headers=headers, data=raw)
    assert answer.status == 400, answer
    assert await listed(session, gateway) == []
    assert_refused(answer, 400, "invalid_request", "admin.invalid_request")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", ADMIN, "GET, POST"),
        ("PATCH", ADMIN, "GET, POST"),
        ("DELETE", ADMIN, "GET, POST"),
        ("GET", ADMIN + "/partner", "DELETE"),
        ("POST", ADMIN + "/partner", "DELETE"),
        ("PUT", ADMIN + "/partner", "DELETE"),
    ],
)
async def test_other_methods_are_not_allowed(
    upstream, gateway_factory, session, storage, method, path, allow
):
    gateway = await gateway_factory(
        upstream.url, policy=OPEN, storage=storage, admin_token=ADMIN_TOKEN
    )
    await issue(session, gateway, name="partner")
    answer = await call(session, method, gateway.url + path, headers=admin())
    assert_refused(answer, 405, "invalid_request", "admin.method")
    assert answer.headers["Allow"] == allow
    assert [t["name"] for t in await listed(session, gateway)] == ["partner"]
    assert event_of(gateway, answer)["rule"] == "admin.method"


# ---------------------------------------------------------------------- no secret is written


@pytest.fixture
def capture_logs(capsys, caplog):
    """The operational log at debug level (JSON lines on stderr) and aiohttp's loggers."""
    caplog.set_level(logging.DEBUG)

    def start() -> None:
        configure_logging("debug")  # after the gateway's build() chose "warning"
        capsys.readouterr()
        caplog.clear()

    def read() -> list[str]:
        captured = capsys.readouterr()
        return [captured.out, captured.err, caplog.text]

    yield start, read
    configure_logging("warning")


async def test_no_token_or_digest_is_written_anywhere(
    proxy, gateway_factory, session, storage, capture_logs
):
    """Tokens of every kind, right and wrong, used and refused, go through the gateway; none
    of them, nor its SHA-256, is in the audit trail or the operational log."""
    start_logs, read_logs = capture_logs
    upstream_token = "itest-upstream-secret-5d0c"
    policy = with_tokens(
        token_entry(max_uses=1),
        token_entry("stale", "itest-stale-secret-81b2", expires="2020-01-01T00:00:00Z"),
    )
    gateway = await gateway_factory(
        proxy.url,
        policy=policy,
        storage=storage,
        admin_token=ADMIN_TOKEN,
        upstream_initial_access_token=upstream_token,
    )
    start_logs()
    issued = (await issue(session, gateway, name="issued", max_uses=1))["token"]
    wrong = "itest-wrong-secret-9e77"
    for token in (TOKEN, TOKEN, issued, issued, wrong, "itest-stale-secret-81b2", issued + "x"):
        await register(session, gateway, headers=bearer(token))
    await register(session, gateway, headers={"Authorization": f"Basic {TOKEN}"})
    await register(session, gateway, POLICY_REFUSED, headers=bearer(TOKEN))
    await call(session, "GET", gateway.url + ADMIN, headers=admin(wrong))
    await listed(session, gateway)
    await call(session, "DELETE", gateway.url + ADMIN + "/issued", headers=admin())

    texts = [gateway.audit_text(), *read_logs()]
    events = gateway.events()
    assert len(events) == 9 + 4
    assert {e.get("initial_access_token_name") for e in events} >= {"partner", "issued"}
    secrets = [TOKEN, issued, wrong, ADMIN_TOKEN, upstream_token, "itest-stale-secret-81b2"]
    for secret in secrets:
        for form in (secret, sha256(secret)):
            for index, text in enumerate(texts):
                assert form not in text, (index, secret, form)
    for index, text in enumerate(texts):  # no header was dumped, whatever its value
        assert not re.search(r'authorization"?\s*[:=]', text, re.IGNORECASE), (index, text)
