"""Audit and wire format end to end.

* Every refusal the gateway makes has an ``error_description`` within RFC 6749 §5.2's
  character set that ends with ``(rule <id>)``; the audit event keeps the description with
  the client's characters as sent.
* Every response names the gateway in ``Server`` without a version, never aiohttp or Python.
* Every audit event carries ``policy_revision``: sha256 of the policy file's bytes followed
  by the managed list's (``gateway/data/mcp-clients.yaml``).
* ``X-Request-ID`` from an untrusted client is recorded, not adopted; from a trusted proxy
  it is adopted.
* The audit lines do not depend on how structlog (the operational log) is configured.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog

from gateway.errors import MAX_WIRE_DESCRIPTION
from tests.support.e2e import (
    DEFAULT_POLICY,
    EVIL_CB,
    REQUEST_ID,
    WIRE_DESCRIPTION,
    assert_server_header,
    assert_wire_refusal,
    default_policy_data,
    register,
    request,
    revision_of,
    wire_form,
    write_policy,
)
from tests.support.rawhttp import assert_parser_refusal, raw_one
from tests.support.upstream import free_port

pytestmark = pytest.mark.integration

ICM = "invalid_client_metadata"
IRU = "invalid_redirect_uri"
E = [EVIL_CB]
CLAUDE_CB = "https://claude.ai/api/mcp/auth_callback"
MCP_REMOTE_ID = "2e6dc280-f3c3-4e01-99a7-8181dbd1d23d"

POLICIES: dict[str, dict[str, Any]] = {
    "evil": default_policy_data(redirect_uris={"allow": ["https://evil.example.com/*"]}),
    "open": {"version": 1, "mode": "open"},
    "disabled": {"version": 1, "mode": "disabled"},
}


@pytest.fixture
def policy_files(tmp_path: Path) -> dict[str, Path]:
    return {name: write_policy(tmp_path / f"{name}.yaml", data) for name, data in POLICIES.items()}


@dataclass(frozen=True)
class Refusal:
    status: int
    error: str
    rule: str
    body: Any = None
    data: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"
    policy: str = "evil"

    async def send(self, session: aiohttp.ClientSession, gateway: Any) -> Any:
        headers = dict(self.headers)
        if self.data is not None:
            headers.setdefault("Content-Type", "application/json")
        return await request(
            session,
            self.method,
            gateway.url + "/reg",
            json_body=self.body,
            data=self.data,
            headers=headers,
        )


def policy_refusal(rule: str, body: dict[str, Any], error: str = ICM, **kw: Any) -> Refusal:
    return Refusal(400, error, rule, body=body, **kw)


#: Refusals the policy engine makes (the policy was consulted).
POLICY_REFUSALS: dict[str, Refusal] = {
    "hidden-cgj": policy_refusal(
        "client_name.hidden_characters", {"client_name": "claude\u034fai", "redirect_uris": E}
    ),
    "hidden-rlo": policy_refusal(
        "client_name.hidden_characters", {"client_name": "\u202eiaedualc", "redirect_uris": E}
    ),
    "hidden-newline": policy_refusal(
        "client_name.hidden_characters", {"client_name": "Claude\nCode", "redirect_uris": E}
    ),
    "impersonation-coptic": policy_refusal(
        "client_name.impersonation", {"client_name": "Curs\u2c9fr", "redirect_uris": E}
    ),
    "impersonation-small-caps": policy_refusal(
        "client_name.impersonation",
        {"client_name": "\u1d04\u029f\u1d00\u1d1c\u1d05\u1d07", "redirect_uris": E},
    ),
    "name-denied": policy_refusal(
        "client_name.denied", {"client_name": "Super Admin Tool", "redirect_uris": E}
    ),
    "name-too-long": policy_refusal(
        "client_name.invalid", {"client_name": "\u00e9" * 300, "redirect_uris": E}
    ),
    "foreign-host-claude": policy_refusal(
        "identity.foreign_host",
        {
            "client_name": "claudeai",
            "redirect_uris": [CLAUDE_CB],
            "logo_uri": "https://evil.example.com/x.png",
        },
    ),
    "foreign-host-ordinary": policy_refusal(
        "identity.foreign_host",
        {"client_name": "Notes", "redirect_uris": E, "logo_uri": "https://claude.ai/x.png"},
    ),
    "software-id-zwsp": policy_refusal(
        "software_id.invalid",
        {"software_id": "2e6dc280\u200b-f3c3-4e01-99a7-8181dbd1d23d", "redirect_uris": E},
    ),
    "software-id-impersonation": policy_refusal(
        "software_id.impersonation", {"software_id": MCP_REMOTE_ID, "redirect_uris": E}
    ),
    "software-statement": policy_refusal(
        "software_statement.not_accepted",
        {"software_statement": "eyJhbGciOiJub25lIn0.e30.", "redirect_uris": E},
        error="unapproved_software_statement",
    ),
    "grant-password": policy_refusal(
        "grant_type.not_allowed", {"grant_types": ["password"], "redirect_uris": E}
    ),
    "response-token": policy_refusal(
        "response_type.not_allowed",
        {"grant_types": ["authorization_code"], "response_types": ["token"], "redirect_uris": E},
    ),
    "scope": policy_refusal("scope.not_allowed", {"scope": "admin", "redirect_uris": E}),
    "auth-method": policy_refusal(
        "auth_method.not_allowed",
        {"token_endpoint_auth_method": "tls_client_auth", "redirect_uris": E},
    ),
    "jwks-conflict": policy_refusal(
        "jwks.conflict",
        {"jwks": {"keys": []}, "jwks_uri": "https://evil.example.com/jwks", "redirect_uris": E},
    ),
    "redirect-missing": policy_refusal("redirect_uri.missing", {"client_name": "x"}, IRU),
    "redirect-not-allowed": policy_refusal(
        "redirect_uri.not_allowed", {"redirect_uris": ["https://other.example.net/cb"]}, IRU
    ),
    "redirect-fragment": policy_refusal(
        "redirect_uri.fragment", {"redirect_uris": ["https://evil.example.com/cb#x"]}, IRU
    ),
    "redirect-javascript": policy_refusal(
        "redirect_uri.dangerous_scheme", {"redirect_uris": ["javascript:alert(1)"]}, IRU
    ),
    "redirect-backslash": policy_refusal(
        "redirect_uri.backslash",
        {"redirect_uris": ["https://evil.example.com\\@attacker.example/cb"]},
        IRU,
    ),
    "redirect-quote": policy_refusal(
        "redirect_uri.malformed", {"redirect_uris": ['https://evil.example.com/cb"><x>']}, IRU
    ),
    "redirect-http": policy_refusal(
        "redirect_uri.insecure_http", {"redirect_uris": ["http://evil.example.com/cb"]}, IRU
    ),
    "redirect-userinfo": policy_refusal(
        "redirect_uri.userinfo",
        {"redirect_uris": ["https://evil.example.com@attacker.example/cb"]},
        IRU,
    ),
    "redirect-unstable": policy_refusal(
        "redirect_uri.unstable_host", {"redirect_uris": ["https://stra\u00dfe.example.com/cb"]}, IRU
    ),
    "redirect-too-many": policy_refusal(
        "redirect_uri.too_many",
        {"redirect_uris": [f"https://evil.example.com/cb{i}" for i in range(21)]},
        IRU,
    ),
    "post-logout-not-allowed": policy_refusal(
        "post_logout_redirect_uri.not_allowed",
        {"redirect_uris": E, "post_logout_redirect_uris": ["https://other.example.net/bye"]},
        IRU,
    ),
    "metadata-ip": policy_refusal(
        "metadata_url.ip_address",
        {"redirect_uris": E, "jwks_uri": "https://[::ffff:127.0.0.1]/jwks"},
        policy="open",
    ),
    "metadata-localhost": policy_refusal(
        "metadata_url.internal_host",
        {"redirect_uris": E, "logo_uri": "https://localhost/x.png"},
        policy="open",
    ),
    "metadata-not-https": policy_refusal(
        "metadata_url.not_https",
        {"redirect_uris": E, "sector_identifier_uri": "http://keys.example.com/s"},
        policy="open",
    ),
    "metadata-malformed": policy_refusal(
        "metadata_url.malformed",
        {"redirect_uris": E, "request_uris": ["https://a..b/x"]},
        policy="open",
    ),
    "mode-disabled": Refusal(
        403, "access_denied", "mode.disabled", body={"redirect_uris": E}, policy="disabled"
    ),
}

#: Refusals made before the policy is consulted (method, headers, body).
REQUEST_REFUSALS: dict[str, Refusal] = {
    "get": Refusal(405, "invalid_request", "request.method", method="GET"),
    "put": Refusal(405, "invalid_request", "request.method", method="PUT", data=b"{}"),
    "too-large": Refusal(
        413, "invalid_request", "request.too_large", data=b'{"x": "' + b"a" * 70_000 + b'"}'
    ),
    "text-plain": Refusal(
        415,
        "invalid_request",
        "request.content_type",
        data=b"{}",
        headers={"Content-Type": "text/plain"},
    ),
    "latin1": Refusal(
        415,
        "invalid_request",
        "request.content_type",
        data=b"{}",
        headers={"Content-Type": "application/json; charset=iso-8859-1"},
    ),
    "gzip": Refusal(
        415,
        "invalid_request",
        "request.content_encoding",
        data=b"\x1f\x8b\x08\x00",
        headers={"Content-Encoding": "gzip"},
    ),
    "bad-json": Refusal(400, ICM, "request.invalid_json", data=b'{"redirect_uris": ['),
    "nan": Refusal(400, ICM, "request.invalid_json", data=b'{"default_max_age": NaN}'),
    "not-utf8": Refusal(400, ICM, "request.invalid_json", data=b'{"client_name": "\xff\xfe"}'),
    "duplicate-key": Refusal(
        400,
        ICM,
        "request.duplicate_key",
        data=b'{"redirect_uris":["https://evil.example.com/cb"],'
        b'"redirect_uris":["https://attacker.example/cb"]}',
    ),
    "duplicate-nested-key": Refusal(
        400, ICM, "request.duplicate_key", data=b'{"jwks": {"keys": [], "keys": []}}'
    ),
    "array": Refusal(400, ICM, "request.not_object", data=b'["https://evil.example.com/cb"]'),
    "wrong-type": Refusal(
        400, ICM, "metadata.invalid_type", data=b'{"redirect_uris": "https://evil.example.com/cb"}'
    ),
    "too-many-contacts": Refusal(
        400,
        ICM,
        "metadata.too_many_values",
        body={"redirect_uris": E, "contacts": [f"a{i}@example.com" for i in range(21)]},
    ),
}


def assert_audited_refusal(gateway: Any, answer: Any, case: Refusal) -> dict[str, Any]:
    """The wire refusal, and its one audit event: same rule, same request id, and the
    description as the gateway wrote it before escaping it for the wire."""
    payload = assert_wire_refusal(answer, case.status, case.error, case.rule)
    events = gateway.registrations()
    assert len(events) == 1, events
    event = events[0]
    assert event["request_id"] == answer.headers["X-Request-ID"]
    assert (event["decision"], event["rule"], event["error"], event["status"]) == (
        "denied",
        case.rule,
        case.error,
        case.status,
    )
    original = event["error_description"]
    assert original, event
    if len(original) > MAX_WIRE_DESCRIPTION:
        original = original[: MAX_WIRE_DESCRIPTION - 3] + "..."
    assert payload["error_description"] == f"{wire_form(original)} (rule {case.rule})"
    return event


ALL_REFUSALS = {**POLICY_REFUSALS, **REQUEST_REFUSALS}


@pytest.mark.parametrize("name", list(ALL_REFUSALS))
async def test_refusal_wire_format_and_audit(
    upstream, gateway_factory, policy_files, session, name
):
    case = ALL_REFUSALS[name]
    policy = policy_files[case.policy]
    gateway = await gateway_factory(upstream.url, policy=policy)
    before = await upstream.aclient_count(session)
    answer = await case.send(session, gateway)
    event = assert_audited_refusal(gateway, answer, case)
    assert await upstream.aclient_count(session) == before
    if case.rule == "request.method":
        assert answer.headers["Allow"] == "POST, OPTIONS"
    if name in POLICY_REFUSALS:
        assert event["policy"] == str(policy)
        assert event["policy_revision"] == revision_of(policy)


async def test_request_level_refusals_carry_the_policy_revision(
    upstream, gateway_factory, policy_files, session
):
    """Every audit event names the policy revision, including refusals decided before the
    policy was consulted: an SRE reading any event must know which rules were live."""
    policy = policy_files["evil"]
    gateway = await gateway_factory(upstream.url, policy=policy)
    for case in REQUEST_REFUSALS.values():
        await case.send(session, gateway)
    revision = revision_of(policy)
    missing = {
        event["rule"]: event.get("policy_revision")
        for event in gateway.registrations()
        if event.get("policy_revision") != revision
    }
    assert missing == {}, f"events without policy_revision {revision}: {missing}"


async def test_parser_refusal_wire_format(upstream, gateway_factory):
    gateway = await gateway_factory(upstream.url, policy=POLICIES["open"])
    reply = await raw_one(
        gateway,
        b"POST /reg HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"X-A: a\rX-Injected: 1\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    )
    answer = assert_parser_refusal(reply, 400)
    assert WIRE_DESCRIPTION.match(answer["error_description"]), answer
    assert answer["error_description"].endswith("(rule request.malformed)"), answer
    for name, values in reply.headers.items():
        for value in values:
            assert "aiohttp" not in value.lower() and "python" not in value.lower(), (name, value)
    [event] = gateway.registrations()
    assert event["rule"] == "request.malformed"
    assert event["request_id"] == reply.header("X-Request-ID")


async def test_audit_description_keeps_the_name_as_sent(upstream, gateway_factory, session):
    gateway = await gateway_factory(upstream.url, policy=POLICIES["evil"])
    answer = await register(session, gateway, {"client_name": "claude\u034fai", "redirect_uris": E})
    wire = answer.json()["error_description"]
    assert "claudeU+034Fai" in wire
    assert "\u034f" not in wire
    [event] = gateway.registrations()
    assert "claude\u034fai" in event["error_description"]
    assert event["client_name"] == "claude\u034fai"
    # The audit file itself is ASCII JSON; the character comes back when it is parsed.
    assert "\\u034f" in gateway.audit_text()


@pytest.mark.parametrize(
    ("body", "value"),
    [
        ({"client_name": "\u202eiaedualc", "redirect_uris": E}, "\u202eiaedualc"),
        # A line break is spelled out even in the audit event: a description is one line.
        ({"client_name": "Claude\nCode", "redirect_uris": E}, "ClaudeU+000ACode"),
        ({"client_name": "claude\u200bai", "redirect_uris": E}, "claude\u200bai"),
        (
            {"software_id": "2e6dc280\u200b-f3c3", "redirect_uris": E},
            "2e6dc280\u200b-f3c3",
        ),
    ],
    ids=["rlo", "newline", "zwsp-name", "zwsp-software-id"],
)
async def test_audit_description_keeps_invisible_characters_as_sent(
    upstream, gateway_factory, session, body, value
):
    """gateway/errors.py: "the full description, with the offending value as sent, goes
    into the audit event"; the wire shows each such character as its U+XXXX name."""
    gateway = await gateway_factory(upstream.url, policy=POLICIES["evil"])
    answer = await register(session, gateway, body)
    assert answer.status == 400, answer
    [event] = gateway.registrations()
    assert value in event["error_description"], event["error_description"]
    assert wire_form(value) in answer.json()["error_description"]


# --------------------------------------------------------------------------- Server


async def test_every_response_names_the_gateway_without_a_version(
    upstream, gateway_factory, session
):
    gateway = await gateway_factory(upstream.url)
    base = gateway.url
    answers = {
        "discovery (pass-through)": await request(
            session, "GET", base + "/.well-known/openid-configuration"
        ),
        "upstream 404 (pass-through)": await request(session, "GET", base + "/no/such/page"),
        "token error (pass-through)": await request(
            session,
            "POST",
            base + "/token",
            data=b"grant_type=authorization_code&code=x",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
        "preflight (pass-through)": await request(
            session,
            "OPTIONS",
            base + "/reg",
            headers={"Origin": "http://localhost:6274", "Access-Control-Request-Method": "POST"},
        ),
        "registration 201 (relayed)": await register(
            session,
            gateway,
            {"client_name": "claudeai", "redirect_uris": [CLAUDE_CB]},
        ),
        "refusal": await register(session, gateway, {"redirect_uris": E}),
        "healthz": await request(session, "GET", base + "/-/healthz"),
        "readyz": await request(session, "GET", base + "/-/readyz"),
        "gateway 404": await request(session, "GET", base + "/-/nope"),
        "405": await request(session, "DELETE", base + "/reg"),
    }
    assert answers["registration 201 (relayed)"].status == 201
    assert answers["discovery (pass-through)"].status == 200
    assert answers["healthz"].status == 200
    for what, answer in answers.items():
        try:
            assert_server_header(answer)
        except AssertionError as exc:
            raise AssertionError(f"{what}: {answer.headers}") from exc


async def test_gateway_made_upstream_errors_name_the_gateway(gateway_factory, session):
    dead = f"http://127.0.0.1:{free_port()}"
    gateway = await gateway_factory(dead, registration_paths=("/reg",), policy=POLICIES["open"])
    registration = await register(session, gateway, {"redirect_uris": E})
    assert_wire_refusal(registration, 502, "temporarily_unavailable", "upstream.unreachable")
    passthrough = await request(session, "GET", gateway.url + "/.well-known/openid-configuration")
    assert passthrough.status == 502
    assert_server_header(passthrough)


# --------------------------------------------------------------------------- revision


async def test_every_event_carries_the_revision_of_the_default_policy(
    upstream, gateway_factory, session
):
    gateway = await gateway_factory(upstream.url)  # policies/default.yaml
    await register(session, gateway, {"client_name": "claudeai", "redirect_uris": [CLAUDE_CB]})
    await register(session, gateway, {"client_name": "Claude Desktop", "redirect_uris": E})
    await register(session, gateway, {"redirect_uris": ["https://evil.example.com/cb#x"]})
    events = gateway.registrations()
    assert [e["decision"] for e in events] == ["allowed", "denied", "denied"]
    revision = revision_of(DEFAULT_POLICY)
    assert [e["policy_revision"] for e in events] == [revision] * 3
    assert {e["policy"] for e in events} == {str(DEFAULT_POLICY)}


# --------------------------------------------------------------------------- request ids

TRUSTED = (ipaddress.ip_network("127.0.0.0/8"),)


@pytest.mark.parametrize(
    ("given", "recorded"),
    [
        ("client-chosen-1", "client-chosen-1"),
        ("a b<c>", "a_b_c_"),
        ("r" * 300, "r" * 128),
    ],
    ids=["plain", "unsafe", "long"],
)
@pytest.mark.parametrize("allowed", [True, False], ids=["allowed", "refused"])
async def test_untrusted_request_id_is_recorded_not_adopted(
    upstream, gateway_factory, session, given, recorded, allowed
):
    gateway = await gateway_factory(upstream.url)
    body = (
        {"client_name": "claudeai", "redirect_uris": [CLAUDE_CB]}
        if allowed
        else {"redirect_uris": E}
    )
    answer = await register(session, gateway, body, headers={"X-Request-ID": given})
    assert answer.status == (201 if allowed else 400), answer
    [event] = gateway.registrations()
    assert event["client_request_id"] == recorded
    assert REQUEST_ID.match(event["request_id"])
    assert event["request_id"] != given
    assert answer.headers["X-Request-ID"] == event["request_id"]


@pytest.mark.parametrize("allowed", [True, False], ids=["allowed", "refused"])
async def test_trusted_proxy_request_id_is_adopted(upstream, gateway_factory, session, allowed):
    gateway = await gateway_factory(upstream.url, trusted_proxies=TRUSTED)
    body = (
        {"client_name": "claudeai", "redirect_uris": [CLAUDE_CB]}
        if allowed
        else {"redirect_uris": E}
    )
    answer = await register(session, gateway, body, headers={"X-Request-ID": "edge-7f3a:42"})
    assert answer.status == (201 if allowed else 400), answer
    [event] = gateway.registrations()
    assert event["request_id"] == "edge-7f3a:42"
    assert event.get("client_request_id") is None
    assert answer.headers["X-Request-ID"] == "edge-7f3a:42"


async def test_trusted_proxy_request_id_that_is_not_sane_is_replaced(
    upstream, gateway_factory, session
):
    gateway = await gateway_factory(upstream.url, trusted_proxies=TRUSTED)
    answer = await register(
        session, gateway, {"redirect_uris": E}, headers={"X-Request-ID": "two words"}
    )
    [event] = gateway.registrations()
    assert REQUEST_ID.match(event["request_id"])
    assert answer.headers["X-Request-ID"] == event["request_id"]


# --------------------------------------------------------------------------- structlog


@pytest.mark.parametrize(
    "configure",
    [
        {"processors": [structlog.processors.KeyValueRenderer()]},
        {
            "processors": [structlog.processors.KeyValueRenderer()],
            "wrapper_class": structlog.make_filtering_bound_logger(logging.CRITICAL),
        },
    ],
    ids=["key-value", "key-value-critical-only"],
)
async def test_audit_lines_ignore_the_operational_logging_configuration(
    upstream, gateway_factory, session, configure
):
    saved = structlog.get_config()
    try:
        gateway = await gateway_factory(upstream.url)  # configures the operational log
        structlog.configure(**configure)
        allowed = await register(
            session, gateway, {"client_name": "claudeai", "redirect_uris": [CLAUDE_CB]}
        )
        refused = await register(session, gateway, {"redirect_uris": E})
        assert (allowed.status, refused.status) == (201, 400)
    finally:
        structlog.configure(**saved)
    lines = gateway.audit_text().splitlines()
    assert len(lines) == 3, lines  # the start-up policy.loaded, then the two registrations
    assert lines[0].startswith('{"event": "policy.loaded"'), lines[0]
    for line in lines[1:]:
        assert line.startswith('{"event": "registration"'), line
        event = json.loads(line)
        assert list(event)[:3] == ["event", "timestamp", "level"], line
        assert event["level"] == "info"
        assert event["timestamp"].endswith("Z")
