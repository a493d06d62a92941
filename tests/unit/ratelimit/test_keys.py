"""Which bucket a request falls in (gateway.ratelimit.keys)."""

from __future__ import annotations

import pytest

from gateway.policy.model import RateKey
from gateway.ratelimit.keys import RateFacts, bucket, ip_bucket, storage_key, vendor_bucket


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),  # the same subscriber
        ("::ffff:203.0.113.9", "203.0.113.9"),  # a dual-stack listener's IPv4 peer
        ("not-an-ip", "not-an-ip"),
        (None, None),
        ("", None),
    ],
)
def test_ip_buckets(address: str | None, expected: str | None) -> None:
    assert ip_bucket(address) == expected


@pytest.mark.parametrize(
    "name",
    [
        "Claude Desktop",
        "claude-desktop",
        "CLAUDE   desktop",
        "\uff23\uff4c\uff41\uff55\uff44\uff45 Desktop",
        "\u0421laude Desktop",
    ],
    ids=["plain", "dashed", "upper", "full-width", "cyrillic-es"],
)
def test_names_that_read_alike_share_a_vendor_bucket(name: str) -> None:
    assert vendor_bucket(None, name) == "name:claudedesktop"


def test_a_managed_entry_is_its_own_bucket_whatever_the_name() -> None:
    assert vendor_bucket("claude", "anything") == "managed:claude"
    assert vendor_bucket(None, None) == "unknown"
    assert vendor_bucket(None, "!!!") == "unknown"


FACTS = RateFacts(
    client_ip="198.51.100.7",
    software_id="sw-1",
    vendor=None,
    client_name="My App",
    token_name="partner",
    tenant="acme",
)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (RateKey.CLIENT_IP, "198.51.100.7"),
        (RateKey.SOFTWARE_ID, "sw-1"),
        (RateKey.VENDOR, "name:rnyapp"),  # the UTS #39 skeleton: "m" reads as "rn"
        (RateKey.INITIAL_ACCESS_TOKEN, "partner"),
        (RateKey.TENANT, "acme"),
        (RateKey.GLOBAL, ""),
    ],
)
def test_every_key_kind(key: RateKey, expected: str) -> None:
    assert bucket(key, FACTS) == expected


@pytest.mark.parametrize("key", [RateKey.SOFTWARE_ID, RateKey.INITIAL_ACCESS_TOKEN])
def test_a_rule_whose_key_the_request_lacks_does_not_apply(key: RateKey) -> None:
    assert bucket(key, RateFacts(client_ip="198.51.100.7")) is None


def test_storage_keys_never_hold_client_text() -> None:
    key = storage_key("acme", "per-vendor", 0, "name:<script>\r\n" + "x" * 10_000)
    assert key.startswith("rl:acme:per-vendor:0:")
    assert len(key) < 80 and "<script>" not in key and "\n" not in key
    assert storage_key("", "r", 0, "a") != storage_key("", "r", 1, "a")
    assert storage_key("", "r", 0, "a") != storage_key("x", "r", 0, "a")
