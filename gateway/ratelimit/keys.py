"""Which bucket a request falls in, for each kind of rate-limit key.

``client_ip`` is the address the gateway vouches for (the socket peer, or behind
``trusted_proxies`` the rightmost untrusted forwarded address), so a forged
``X-Forwarded-For`` from anyone else changes nothing.  An IPv6 caller is counted by its
``/64``: one subscriber gets a whole ``/64`` (RFC 6177), and counting single addresses would
give them 2^64 buckets.  ``vendor`` is the managed entry the request matched, else the
identity key of its ``client_name`` (``Claude Desktop``, ``claude-desktop`` and
the same in full-width letters are one vendor), else ``unknown``.  A rule whose key the request does
not have (no ``software_id``, no initial access token) does not apply to it.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
from dataclasses import dataclass

from gateway.bounded_cache import short_text_cache
from gateway.policy.model import RateKey
from gateway.policy.names import words
from gateway.unicode.confusables import identity_keys


@dataclass(frozen=True, slots=True)
class RateFacts:
    """What the keys are made of, for one request."""

    client_ip: str | None = None
    software_id: str | None = None
    #: The managed entry id the request matched.
    vendor: str | None = None
    client_name: str | None = None
    #: The name of the initial access token it carried.
    token_name: str | None = None
    tenant: str | None = None


@functools.lru_cache(maxsize=4096)  # parsing an address costs more than the rest of a check
def ip_bucket(address: str | None) -> str | None:
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)


def vendor_bucket(vendor: str | None, client_name: str | None) -> str:
    if vendor:
        return f"managed:{vendor}"
    if client_name:
        key = "".join(words(identity_keys(client_name)[0]))
        if key:
            return f"name:{key}"
    return "unknown"


def bucket(key: RateKey, facts: RateFacts) -> str | None:
    """The bucket of ``facts`` for ``key``, or ``None`` when the rule does not apply."""
    if key is RateKey.CLIENT_IP:
        return ip_bucket(facts.client_ip)
    if key is RateKey.SOFTWARE_ID:
        return facts.software_id or None
    if key is RateKey.VENDOR:
        return vendor_bucket(facts.vendor, facts.client_name)
    if key is RateKey.INITIAL_ACCESS_TOKEN:
        return facts.token_name
    if key is RateKey.TENANT:
        return facts.tenant or ""
    return ""


@short_text_cache
def storage_key(scope: str, rule: str, window: int, value: str) -> str:
    """The counter key: the value hashed, so client-chosen text (a name, a software_id)
    never becomes a storage key as it was sent, and every key has a bounded length."""
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"rl:{scope}:{rule}:{window}:{digest}"
