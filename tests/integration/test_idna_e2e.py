"""IDNA skew end to end: a host that IDNA implementations map differently must not slip past
a block pattern written in its ASCII form, at run time or in a policy file.

``stra\\u00dfe`` is ``strasse`` under transitional UTS #46 (and old browsers) but
``xn--strae-oqa`` under non-transitional processing; ``stra\\u1e9ee`` (capital sharp s)
changed its mapping between Unicode versions.  The gateway refuses both outright
(``redirect_uri.unstable_host``) instead of guessing which one the browser will resolve.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.e2e import assert_wire_refusal, register, revision_of
from tests.support.paths import ROOT

pytestmark = pytest.mark.integration

BLOCK = "https://strasse.tenant.example.com/*"
BLOCKING = {"version": 1, "mode": "open", "redirect_uris": {"block": [BLOCK]}}


@pytest.mark.parametrize(
    ("uri", "rule"),
    [
        ("https://stra\u1e9ee.tenant.example.com/cb", "redirect_uri.unstable_host"),
        ("https://stra\u00dfe.tenant.example.com/cb", "redirect_uri.unstable_host"),
        ("https://STRASSE.tenant.example.com/cb", "redirect_uri.blocked"),
        (
            "https://\uff33\uff34\uff32\uff21\uff33\uff33\uff25.tenant.example.com/cb",
            "redirect_uri.blocked",
        ),
        ("https://stra\u017f\u017fe.tenant.example.com/cb", "redirect_uri.blocked"),
        ("https://strasse\u3002tenant.example.com/cb", "redirect_uri.blocked"),
        ("https://strasse.tenant.example.com./cb", "redirect_uri.blocked"),
        ("https://stra%C3%9Fe.tenant.example.com/cb", "redirect_uri.malformed"),
    ],
    ids=[
        "capital-sharp-s",
        "sharp-s",
        "upper-case",
        "fullwidth",
        "long-s",
        "ideographic-dot",
        "trailing-dot",
        "percent-encoded-sharp-s",
    ],
)
async def test_spelling_of_a_blocked_host_is_refused(upstream, gateway_factory, session, uri, rule):
    gateway = await gateway_factory(upstream.url, policy=BLOCKING)
    before = await upstream.aclient_count(session)
    answer = await register(session, gateway, {"client_name": "Tenant", "redirect_uris": [uri]})
    payload = assert_wire_refusal(answer, 400, "invalid_redirect_uri", rule)
    assert uri.isascii() or uri not in payload["error_description"]
    assert await upstream.aclient_count(session) == before
    [event] = gateway.registrations()
    assert (event["decision"], event["rule"]) == ("denied", rule)
    assert event["redirect_uris"] == [uri]
    if rule == "redirect_uri.blocked":
        assert event["matched"] == [f"block:{BLOCK}"]


async def test_a_neighbouring_tenant_is_created(upstream, gateway_factory, session):
    """The control: the block pattern refuses one tenant, not the others."""
    gateway = await gateway_factory(upstream.url, policy=BLOCKING)
    before = await upstream.aclient_count(session)
    answer = await register(
        session,
        gateway,
        {"client_name": "Tenant", "redirect_uris": ["https://other.tenant.example.com/cb"]},
    )
    assert answer.status == 201, answer
    assert await upstream.aclient_count(session) == before + 1


def check(
    tmp_path: Path, pattern_key: str, pattern: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        f'version: 1\nmode: open\nredirect_uris:\n  {pattern_key}: ["{pattern}"]\n',
        encoding="utf-8",
    )
    config = tmp_path / "config.yaml"
    config.write_text(
        "upstream: {url: 'http://127.0.0.1:9', registration_paths: [/reg]}\n"
        f"policy_file: {policy}\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "check", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    return result, policy


@pytest.mark.parametrize("key", ["block", "allow"])
@pytest.mark.parametrize(
    "host",
    ["stra\u00dfe.tenant.example.com", "stra\u1e9ee.tenant.example.com"],
    ids=["ss", "capital-ss"],
)
def test_check_refuses_a_pattern_with_an_unstable_host(tmp_path, key, host):
    result, policy = check(tmp_path, key, f"https://{host}/*")
    assert result.returncode == 1, result
    assert f"{policy}:4: redirect_uris.{key}[0]" in result.stderr, result.stderr
    assert "redirect_uri.unstable_host" in result.stderr
    assert "1 problem found" in result.stderr
    assert "policy ok" not in result.stdout


def test_check_accepts_the_ascii_pattern(tmp_path):
    result, policy = check(tmp_path, "block", BLOCK)
    assert result.returncode == 0, result
    assert "policy ok" in result.stdout
    assert f"policy revision: {revision_of(policy)}" in result.stdout
