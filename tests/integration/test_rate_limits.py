"""The policy's ``rate_limits`` against the real upstream, on both stores (``memory://`` and
a real Redis): what is counted, per which key, what a refusal looks like, and that the
counting holds under concurrency.

Why each matters: a limit that counts the wrong thing either locks out honest clients
(counting what the upstream refused) or lets an abuser through (not counting what the policy
refused, or a key the caller chooses, such as a forged ``X-Forwarded-For``).  Every refusal
must still be exactly one audit event, or the trail of an abuse is lost.

Windows are minutes and hours, so a test never straddles enough of a window for the
sliding-window weighting to change an outcome.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.controls import (
    OPEN,
    POLICY_REFUSED,
    POLICY_REFUSED_RULE,
    STORAGES,
    UPSTREAM_REFUSED,
    Answer,
    assert_refused,
    bearer,
    client,
    event_of,
    register,
    sha256,
    storage_uri,
)
from tests.support.gateway import RunningGateway, build, make_policies, make_settings
from tests.support.keycloak import REGISTRATION_PATH, KeycloakStandIn

pytestmark = pytest.mark.integration

LOCALHOST_PROXY = (ipaddress.ip_network("127.0.0.1/32"),)


@pytest.fixture(params=STORAGES)
def storage(request: pytest.FixtureRequest) -> str:
    return storage_uri(request)


def rule(name: str, key: str, limit: str, count: str = "attempts") -> dict[str, str]:
    return {"name": name, "key": key, "limit": limit, "count": count}


def limited(*rules: dict[str, str], **policy: Any) -> dict[str, Any]:
    """The open policy with these rate limits (and other top-level keys)."""
    return {**OPEN, "rate_limits": list(rules), **policy}


def assert_rate_limited(answer: Answer, name: str, low: int, high: int) -> None:
    """429 ``rate_limited`` naming ``rate_limit.<name>``, ``Retry-After`` within
    ``[low, high]`` whole seconds."""
    assert_refused(answer, 429, "rate_limited", f"rate_limit.{name}")
    assert f"'{name}'" in answer.body["error_description"]
    assert low <= answer.retry_after <= high, answer.retry_after


def assert_one_event_each(gateway: RunningGateway, answers: list[Answer]) -> list[dict]:
    """Every request has exactly one audit event, with the status it was answered."""
    events = gateway.registrations()
    assert len(events) == len(answers), (len(events), len(answers))
    found = [event_of(gateway, answer) for answer in answers]
    for answer, event in zip(answers, found, strict=True):
        assert event["status"] == answer.status, (event, answer)
    return found


# ---------------------------------------------------------------------- the refusal


@pytest.mark.parametrize("limit", [1, 3])
async def test_the_limit_is_reached_then_429_with_retry_after(
    upstream, gateway_factory, session, storage, limit
):
    """N registrations per minute: N pass, then 429 ``rate_limited`` naming the rule, with a
    Retry-After a client can act on.  In a fresh window with nothing before it, the next
    request fits once the current window is over and N/limit of the next one has passed
    (the previous window's count is then weighed down enough): at most 60 + 60/N s."""
    gateway = await gateway_factory(
        upstream.url,
        policy=limited(rule("per-ip", "client_ip", f"{limit}/minute")),
        storage=storage,
    )
    before = await upstream.aclient_count(session)
    answers = [await register(session, gateway) for _ in range(limit)]
    assert [a.status for a in answers] == [201] * limit, answers
    refused = [await register(session, gateway) for _ in range(2)]
    for answer in refused:
        assert_rate_limited(answer, "per-ip", 1, 60 + 60 // limit + 1)
        assert "retry after" in answer.body["error_description"]
    assert await upstream.aclient_count(session) == before + limit

    events = assert_one_event_each(gateway, answers + refused)
    for event in events[limit:]:
        assert event["decision"] == "denied"
        assert event["rule"] == "rate_limit.per-ip"
        assert event["error"] == "rate_limited"
        assert event["upstream_status"] is None
        assert event["client_id"] is None
        assert event["client_name"] == "Controls Test App"  # what was refused is recorded


async def test_after_retry_after_seconds_one_more_request_fits(
    upstream, gateway_factory, session, storage
):
    """Retry-After is a promise: a client that waits that long (and nobody else sends
    meanwhile) is let in, not refused again.  A one-second window keeps the wait short."""
    gateway = await gateway_factory(
        upstream.url, policy=limited(rule("per-second", "client_ip", "2/second")), storage=storage
    )
    for _ in range(2):
        assert (await register(session, gateway)).status == 201
    refused = await register(session, gateway)
    assert_rate_limited(refused, "per-second", 1, 2)
    await asyncio.sleep(refused.retry_after)
    again = await register(session, gateway)
    assert again.status == 201, again


@pytest.mark.parametrize(
    ("limit", "admitted", "low", "high"),
    [
        # The minute is full first: the wait is about a minute.
        ("2/minute;5/hour", 2, 1, 60 + 30 + 1),
        # The hour is full first: the wait is of the hour (at least 3600/3 s).
        ("3/hour;10/minute", 3, 1200, 3600 + 1200 + 1),
    ],
)
async def test_every_window_of_a_rule_applies(
    upstream, gateway_factory, session, storage, limit, admitted, low, high
):
    """A rule's windows (``2/minute;5/hour``) all apply; whichever is full refuses, under
    the rule's name, with the wait of that window."""
    gateway = await gateway_factory(
        upstream.url, policy=limited(rule("windows", "global", limit)), storage=storage
    )
    answers = [await register(session, gateway) for _ in range(admitted)]
    assert [a.status for a in answers] == [201] * admitted, answers
    refused = await register(session, gateway)
    assert_rate_limited(refused, "windows", low, high)
    assert_one_event_each(gateway, [*answers, refused])


async def test_with_several_full_rules_the_first_is_named_and_the_longest_wait_given(
    upstream, gateway_factory, session, storage
):
    """When several rules are full, the answer names the first in policy order, but its
    Retry-After is the longest wait: retrying after a shorter one would only be refused by
    the other rule."""
    policy = limited(
        rule("per-ip-minute", "client_ip", "2/minute"), rule("all-hour", "global", "2/hour")
    )
    gateway = await gateway_factory(upstream.url, policy=policy, storage=storage)
    for _ in range(2):
        assert (await register(session, gateway)).status == 201
    refused = await register(session, gateway)
    assert_rate_limited(refused, "per-ip-minute", 1800, 3600 + 1800 + 1)
    assert event_of(gateway, refused)["rule"] == "rate_limit.per-ip-minute"


async def test_a_request_one_rule_refuses_is_counted_by_none(
    upstream, gateway_factory, session, storage
):
    """All rules are checked and counted in one step: a request refused by one rule takes
    nothing from the others, so a client hammering one bucket cannot use up a shared one."""
    policy = limited(rule("all", "global", "3/minute"), rule("per-sw", "software_id", "1/minute"))
    gateway = await gateway_factory(upstream.url, policy=policy, storage=storage)
    a1 = await register(session, gateway, client(software_id="itest-sw-a"))
    assert a1.status == 201, a1
    for _ in range(3):  # refused by per-sw: if they counted in "all", b or c would fail
        assert_rate_limited(
            await register(session, gateway, client(software_id="itest-sw-a")), "per-sw", 1, 121
        )
    for software_id in ("itest-sw-b", "itest-sw-c"):
        answer = await register(session, gateway, client(software_id=software_id))
        assert answer.status == 201, answer
    last = await register(session, gateway, client(software_id="itest-sw-d"))
    assert_rate_limited(last, "all", 1, 81)
    assert len(gateway.registrations()) == 7


# ---------------------------------------------------------------------- what is counted


async def test_attempts_count_requests_the_policy_refuses(
    upstream, gateway_factory, session, storage
):
    """``count: attempts`` counts every registration request that reaches it, refused by
    the policy or not: a caller probing the policy with bad requests uses up its allowance.
    Once full, a limit refuses even what the policy would have refused."""
    policy = limited(rule("tries", "client_ip", "3/minute"))
    gateway = await gateway_factory(upstream.url, policy=policy, storage=storage)
    answers = [await register(session, gateway, POLICY_REFUSED) for _ in range(2)]
    for answer in answers:
        assert_refused(answer, 400, "invalid_redirect_uri", POLICY_REFUSED_RULE)
    answers.append(await register(session, gateway))
    assert answers[-1].status == 201, answers[-1]
    answers.append(await register(session, gateway))
    assert_rate_limited(answers[-1], "tries", 1, 81)
    answers.append(await register(session, gateway, POLICY_REFUSED))
    assert_rate_limited(answers[-1], "tries", 1, 81)

    events = assert_one_event_each(gateway, answers)
    assert [e["rule"] for e in events] == [
        POLICY_REFUSED_RULE,
        POLICY_REFUSED_RULE,
        "allow.open",
        "rate_limit.tries",
        "rate_limit.tries",
    ]
    assert [e["decision"] for e in events] == ["denied", "denied", "allowed", "denied", "denied"]


async def test_attempts_count_requests_the_upstream_refuses(
    upstream, gateway_factory, session, storage
):
    """An attempt is an attempt whatever the upstream made of it."""
    policy = limited(rule("tries", "client_ip", "2/minute"))
    gateway = await gateway_factory(upstream.url, policy=policy, storage=storage)
    first = await register(session, gateway, UPSTREAM_REFUSED)
    assert first.status == 400 and first.body["error"] == "invalid_client_metadata", first
    assert event_of(gateway, first)["upstream_status"] == 400
    assert (await register(session, gateway)).status == 201
    assert_rate_limited(await register(session, gateway), "tries", 1, 91)


async def test_registrations_count_only_clients_the_upstream_created(
    upstream, gateway_factory, session, storage
):
    """``count: registrations`` applies only to requests the policy allowed, and the unit a
    request reserved is given back when the upstream does not create the client: refused
    requests never use up the allowance of honest ones."""
    policy = limited(rule("created", "global", "2/minute", "registrations"))
    gateway = await gateway_factory(upstream.url, policy=policy, storage=storage)
    before = await upstream.aclient_count(session)
    answers = []
    for _ in range(3):
        answers.append(await register(session, gateway, POLICY_REFUSED))
        assert_refused(answers[-1], 400, "invalid_redirect_uri", POLICY_REFUSED_RULE)
    for _ in range(3):
        answers.append(await register(session, gateway, UPSTREAM_REFUSED))
        assert answers[-1].status == 400, answers[-1]
        assert answers[-1].body["error"] == "invalid_client_metadata"
    for _ in range(2):
        answers.append(await register(session, gateway))
        assert answers[-1].status == 201, answers[-1]
    assert await upstream.aclient_count(session) == before + 2

    answers.append(await register(session, gateway))
    assert_rate_limited(answers[-1], "created", 1, 91)
    # What the policy refuses is not a registration: it gets its own refusal, not a 429.
    answers.append(await register(session, gateway, POLICY_REFUSED))
    assert_refused(answers[-1], 400, "invalid_redirect_uri", POLICY_REFUSED_RULE)
    # What the policy allows needs a unit, whatever the upstream would have said.
    answers.append(await register(session, gateway, UPSTREAM_REFUSED))
    assert_rate_limited(answers[-1], "created", 1, 91)
    assert await upstream.aclient_count(session) == before + 2

    events = assert_one_event_each(gateway, answers)
    upstream_refused = events[3:6]
    assert all(e["upstream_status"] == 400 and e["decision"] == "allowed" for e in upstream_refused)
    assert all(e["upstream_status"] is None for e in events[8:])


# ---------------------------------------------------------------------- keys


async def test_client_ip_ignores_x_forwarded_for_from_an_untrusted_peer(
    upstream, gateway_factory, session, storage
):
    """Without trusted proxies the key is the socket peer: a forged ``X-Forwarded-For``
    per request must not give a caller a fresh bucket each time."""
    policy = limited(rule("per-ip", "client_ip", "2/minute"))
    gateway = await gateway_factory(upstream.url, policy=policy, storage=storage)
    forged = ["203.0.113.1", "203.0.113.2", "198.51.100.3, 203.0.113.4", "2001:db8::1"]
    answers = [
        await register(session, gateway, headers={"X-Forwarded-For": address}) for address in forged
    ]
    assert [a.status for a in answers[:2]] == [201, 201], answers
    for answer in answers[2:]:
        assert_rate_limited(answer, "per-ip", 1, 91)
    events = assert_one_event_each(gateway, answers)
    assert {e["client_ip"] for e in events} == {"127.0.0.1"}


async def test_behind_a_trusted_proxy_the_rightmost_untrusted_address_is_the_key(
    upstream, gateway_factory, session, storage
):
    """Behind ``trusted_proxies`` the key is the rightmost ``X-Forwarded-For`` address that
    is not a trusted proxy: what the proxy itself saw.  Addresses left of it are whatever
    the client wrote, so prepending some must not change the bucket."""
    policy = limited(rule("per-ip", "client_ip", "2/minute"))
    gateway = await gateway_factory(
        upstream.url, policy=policy, storage=storage, trusted_proxies=LOCALHOST_PROXY
    )

    async def from_(chain: str) -> Answer:
        return await register(session, gateway, headers={"X-Forwarded-For": chain})

    assert (await from_("203.0.113.5")).status == 201
    # The client prepended a forged address; the proxy appended the real one.
    assert (await from_("198.51.100.66, 203.0.113.5")).status == 201
    assert_rate_limited(await from_("192.0.2.77, 198.51.100.66, 203.0.113.5"), "per-ip", 1, 91)
    # Another client of the same proxy has a bucket of its own ...
    assert (await from_("203.0.113.6")).status == 201
    # ... also when a second trusted hop (127.0.0.1) stands right of it.
    assert (await from_("203.0.113.6, 127.0.0.1")).status == 201
    assert_rate_limited(await from_("203.0.113.6"), "per-ip", 1, 91)
    # The proxy itself, with no forwarded address, is one more client.
    assert (await register(session, gateway)).status == 201

    events = gateway.registrations()
    assert [e["client_ip"] for e in events] == [
        "203.0.113.5",
        "203.0.113.5",
        "203.0.113.5",
        "203.0.113.6",
        "203.0.113.6",
        "203.0.113.6",
        "127.0.0.1",
    ]


async def test_an_ipv6_client_is_counted_by_its_64(upstream, gateway_factory, session, storage):
    """One IPv6 subscriber holds a whole /64 (RFC 6177): counted per address, it would have
    2^64 buckets.  (Forwarded addresses: the loopback interface has one IPv6 address, so
    distinct peers in one /64 cannot connect for real; see the next test for a real peer.)
    An IPv4-mapped address is the IPv4 client it maps."""
    policy = limited(rule("per-ip", "client_ip", "2/minute"))
    gateway = await gateway_factory(
        upstream.url, policy=policy, storage=storage, trusted_proxies=LOCALHOST_PROXY
    )

    async def from_(address: str) -> int:
        answer = await register(session, gateway, headers={"X-Forwarded-For": address})
        return answer.status

    assert await from_("2001:db8:1:2::a") == 201
    assert await from_("2001:db8:1:2:ffff:ffff:ffff:ffff") == 201
    assert await from_("[2001:db8:1:2:abcd::1]:4711") == 429  # same /64, another spelling
    assert await from_("2001:db8:1:3::a") == 201  # the next /64 is someone else
    assert await from_("203.0.113.9") == 201
    assert await from_("::ffff:203.0.113.9") == 201
    assert await from_("203.0.113.9") == 429


def _ipv6_loopback_port() -> int | None:
    if not socket.has_ipv6:
        return None
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
            return int(sock.getsockname()[1])
    except OSError:
        return None


async def test_a_real_ipv6_peer_is_limited(upstream, aiohttp_server, tmp_path, session, storage):
    """A gateway listening on [::1] sees an IPv6 socket peer; it is counted (by its /64)
    and audited as the address it is."""
    port = _ipv6_loopback_port()
    if port is None:
        pytest.skip("cannot bind [::1] here")
    audit = tmp_path / "audit-v6.jsonl"
    settings = make_settings(
        upstream.url, port, audit, storage=storage, public_url=f"http://[::1]:{port}"
    )
    app = build(settings, make_policies(limited(rule("per-ip", "client_ip", "2/minute"))))
    await aiohttp_server(app, host="::1", port=port)
    gateway = RunningGateway(f"http://[::1]:{port}", app, audit)
    answers = [await register(session, gateway) for _ in range(3)]
    assert [a.status for a in answers[:2]] == [201, 201], answers
    assert_rate_limited(answers[2], "per-ip", 1, 91)
    events = assert_one_event_each(gateway, answers)
    assert {e["client_ip"] for e in events} == {"::1"}


async def test_software_id_key_and_a_rule_whose_key_is_absent(
    upstream, gateway_factory, session, storage
):
    """A ``software_id`` rule counts per software; a request without one does not fall in
    any bucket of it (it is not one software), so the rule does not apply to it."""
    policy = limited(rule("per-software", "software_id", "2/minute"))
    gateway = await gateway_factory(upstream.url, policy=policy, storage=storage)
    for _ in range(2):
        assert (await register(session, gateway, client(software_id="itest-tool"))).status == 201
    refused = await register(session, gateway, client(software_id="itest-tool"))
    assert_rate_limited(refused, "per-software", 1, 91)
    assert event_of(gateway, refused)["software_id"] == "itest-tool"
    assert (await register(session, gateway, client(software_id="itest-other"))).status == 201
    # software_id compares exactly: another letter case is another software.
    assert (await register(session, gateway, client(software_id="ITEST-TOOL"))).status == 201
    for _ in range(4):
        assert (await register(session, gateway)).status == 201


async def test_vendor_key_is_the_managed_entry(upstream, gateway_factory, session, storage):
    """Requests that are one managed client (here Claude: its redirect URI, whatever name)
    share one vendor bucket; another managed client has its own."""
    policy = limited(rule("per-vendor", "vendor", "2/minute"))
    gateway = await gateway_factory(upstream.url, policy=policy, storage=storage)
    claude = {"redirect_uris": ["https://claude.ai/api/mcp/auth_callback"], "scope": "openid"}
    chatgpt = {
        "redirect_uris": ["https://chatgpt.com/connector_platform_oauth_redirect"],
        "scope": "openid",
    }
    first = await register(session, gateway, {**claude, "client_name": "claudeai"})
    assert first.status == 201, first
    assert event_of(gateway, first)["vendor"] == "claude"
    assert (await register(session, gateway, {**claude, "client_name": "Claude"})).status == 201
    refused = await register(session, gateway, {**claude, "client_name": "Claude"})
    assert_rate_limited(refused, "per-vendor", 1, 91)
    other = await register(session, gateway, {**chatgpt, "client_name": "ChatGPT"})
    assert other.status == 201, other
    assert event_of(gateway, other)["vendor"] == "chatgpt"


async def test_vendor_key_of_unknown_clients_is_their_name_as_a_reader_sees_it(
    upstream, gateway_factory, session, storage
):
    """A client no managed entry knows is counted by the identity key of its name: case,
    full-width letters, Cyrillic look-alikes and word separators do not make a new vendor.
    Requests without any name share the bucket ``unknown``."""
    policy = limited(rule("per-vendor", "vendor", "2/minute"))
    gateway = await gateway_factory(upstream.url, policy=policy, storage=storage)
    variants = [
        "Acme Widget",
        "\uff21\uff23\uff2d\uff25 \uff37\uff29\uff24\uff27\uff25\uff34",  # full-width
        "\u0410\u0441m\u0435 Widget",  # Cyrillic A, es, ie
        "acme-widget",
        "AcmeWidget",
    ]
    answers = [await register(session, gateway, client(client_name=name)) for name in variants]
    assert [a.status for a in answers] == [201, 201, 429, 429, 429], answers
    for answer in answers[2:]:
        assert_rate_limited(answer, "per-vendor", 1, 91)
    assert (await register(session, gateway, client(client_name="Other Tool"))).status == 201
    nameless = [await register(session, gateway, client(client_name=None)) for _ in range(3)]
    assert [a.status for a in nameless] == [201, 201, 429], nameless
    assert event_of(gateway, nameless[2])["client_name"] is None


async def test_initial_access_token_key(upstream, gateway_factory, session, storage):
    """An ``initial_access_token`` rule counts per token (by its name); requests without a
    token are not in it."""
    tokens = {
        "tokens": [
            {"name": "partner-a", "sha256": sha256("itest-token-a")},
            {"name": "partner-b", "sha256": sha256("itest-token-b")},
        ]
    }
    policy = limited(
        rule("per-token", "initial_access_token", "2/minute"), initial_access_tokens=tokens
    )
    gateway = await gateway_factory(upstream.url, policy=policy, storage=storage)
    for _ in range(2):
        assert (await register(session, gateway, headers=bearer("itest-token-a"))).status == 201
    refused = await register(session, gateway, headers=bearer("itest-token-a"))
    assert_rate_limited(refused, "per-token", 1, 91)
    assert event_of(gateway, refused)["initial_access_token_name"] == "partner-a"
    assert (await register(session, gateway, headers=bearer("itest-token-b"))).status == 201
    for _ in range(3):
        assert (await register(session, gateway)).status == 201


async def test_global_key_is_one_bucket_for_everyone(upstream, gateway_factory, session, storage):
    """``global`` counts every request together, whoever sends it, under whatever name."""
    policy = limited(rule("everyone", "global", "3/minute"))
    gateway = await gateway_factory(
        upstream.url, policy=policy, storage=storage, trusted_proxies=LOCALHOST_PROXY
    )
    callers = [("203.0.113.1", "One"), ("203.0.113.2", "Two"), ("2001:db8::3", "Three")]
    for address, name in callers:
        answer = await register(
            session, gateway, client(client_name=name), headers={"X-Forwarded-For": address}
        )
        assert answer.status == 201, answer
    refused = await register(
        session, gateway, client(client_name="Four"), headers={"X-Forwarded-For": "192.0.2.4"}
    )
    assert_rate_limited(refused, "everyone", 1, 81)


# ---------------------------------------------------------------------- tenants (Keycloak)

REALMS = ("acme", "beta", "Customers")


@pytest.fixture(scope="module")
def standin() -> Iterator[KeycloakStandIn]:
    server = KeycloakStandIn().start(realms=REALMS)
    try:
        yield server
    finally:
        server.stop()


async def test_tenant_key_counts_each_realm_apart(gateway_factory, standin, session, storage):
    """A ``tenant`` rule counts per Keycloak realm, also for realms that share the default
    policy; a realm with a policy of its own applies its own rules to its own counters."""
    default = limited(rule("per-realm", "tenant", "2/minute"))
    customers = limited(rule("per-realm", "tenant", "1/minute"))
    gateway = await gateway_factory(
        standin.url,
        profile="keycloak",
        policy=default,
        policies={"Customers": customers},
        storage=storage,
    )

    async def in_realm(realm: str) -> Answer:
        return await register(session, gateway, path=f"/realms/{realm}{REGISTRATION_PATH}")

    before = {realm: await standin.aclient_count(realm, session) for realm in REALMS}
    statuses = {
        realm: [(await in_realm(realm)).status for _ in range(3)] for realm in ("acme", "beta")
    }
    assert statuses == {"acme": [201, 201, 429], "beta": [201, 201, 429]}
    assert (await in_realm("Customers")).status == 201
    refused = await in_realm("Customers")
    assert_rate_limited(refused, "per-realm", 1, 121)
    event = event_of(gateway, refused)
    assert event["tenant"] == "Customers"
    assert event["policy_revision"] != event_of(gateway, await in_realm("acme"))["policy_revision"]
    after = {realm: await standin.aclient_count(realm, session) for realm in REALMS}
    assert {r: after[r] - before[r] for r in REALMS} == {"acme": 2, "beta": 2, "Customers": 1}


async def test_global_key_is_shared_by_the_realms_of_one_policy(
    gateway_factory, standin, session, storage
):
    """``global`` is per policy: the realms judged by the default policy share its bucket,
    a realm with its own policy has its own."""
    gateway = await gateway_factory(
        standin.url,
        profile="keycloak",
        policy=limited(rule("all", "global", "2/minute")),
        policies={"Customers": limited(rule("all", "global", "2/minute"))},
        storage=storage,
    )

    async def in_realm(realm: str) -> int:
        answer = await register(session, gateway, path=f"/realms/{realm}{REGISTRATION_PATH}")
        return answer.status

    assert [await in_realm("acme"), await in_realm("beta"), await in_realm("acme")] == [
        201,
        201,
        429,
    ]
    assert [await in_realm("Customers"), await in_realm("Customers")] == [201, 201]
    assert await in_realm("Customers") == 429


# ---------------------------------------------------------------------- concurrency


@pytest.mark.parametrize("count", ["attempts", "registrations"])
async def test_concurrent_registrations_never_exceed_the_limit(
    upstream, gateway_factory, session, storage, count
):
    """3N registrations at once against a limit of N: exactly N clients are created, the
    others are refused with 429, and every request is one audit event.  The check and the
    count are one step, so no two requests can both take the last unit."""
    limit = 4
    policy = limited(rule("burst", "client_ip", f"{limit}/hour", count))
    gateway = await gateway_factory(upstream.url, policy=policy, storage=storage)
    before = set(upstream.client_ids())
    answers = await asyncio.gather(
        *(register(session, gateway, client(client_name=f"Burst {i}")) for i in range(3 * limit))
    )
    assert Counter(a.status for a in answers) == {201: limit, 429: 2 * limit}, answers
    created = set(upstream.client_ids()) - before
    assert created == {a.body["client_id"] for a in answers if a.status == 201}
    events = assert_one_event_each(gateway, list(answers))
    assert Counter(e["rule"] for e in events) == {
        "allow.open": limit,
        "rate_limit.burst": 2 * limit,
    }
