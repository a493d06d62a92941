"""Label values come from the code and the configuration, never from a request."""

from __future__ import annotations

import pytest

from gateway.metrics.labels import Labels, status_class


def test_rule_ids_are_the_registry_s_and_the_configured_family_members() -> None:
    labels = Labels(rate_limits=["per_ip"])
    assert labels.rule("allow.managed") == "allow.managed"
    assert labels.rule("redirect_uri.not_allowed") == "redirect_uri.not_allowed"
    assert labels.rule("rate_limit.per_ip") == "rate_limit.per_ip"
    assert labels.rule("cimd.fetch.timeout") == "cimd.fetch.timeout"
    assert labels.rule("rate_limit.unconfigured") == "other"
    assert labels.rule("rate_limit.<name>") == "other"
    assert labels.rule("https://evil.example/cb") == "other"
    assert labels.rule(None) == "none"


def test_vendors_are_managed_ids_or_unknown() -> None:
    labels = Labels(vendors=["claude"])
    assert labels.vendor("claude") == "claude"
    assert labels.vendor("Claude Desktop") == "unknown"
    assert labels.vendor(None) == "unknown"


def test_tenants_are_configured_ones_or_other() -> None:
    labels = Labels(tenants=["customers"])
    assert labels.tenant("customers") == "customers"
    assert labels.tenant("Customers") == "other"  # realm names are case-sensitive
    assert labels.tenant("attacker-chosen") == "other"
    assert labels.tenant(None) == "default"


def test_rate_limit_names() -> None:
    labels = Labels(rate_limits=["burst"])
    assert labels.rate_limit("rate_limit.burst") == "burst"
    assert labels.rate_limit("rate_limit.nope") == "other"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (101, "1xx"),
        (200, "2xx"),
        (204, "2xx"),
        (302, "3xx"),
        (404, "4xx"),
        (504, "5xx"),
        (99, "5xx"),
        (600, "5xx"),
    ],
)
def test_status_class(status: int, expected: str) -> None:
    assert status_class(status) == expected
