"""Bounded label values: every label a metric carries comes from a set fixed by the code
or the configuration, never from a request.

A label value that a client chooses (a client name, a redirect URI, a client id, a realm
spelled in a new case) would create one time series per value: an attacker registering
with a fresh name each time would grow the gateway's memory and the monitoring system's
without end.  So rule ids must be ids of :mod:`gateway.rules` (the members of a rule family
only when the configuration names them: the policy's rate limits, the CIMD fetch
outcomes), vendors the managed list's ids, tenants the configured ones; anything else
becomes ``other`` (or ``unknown`` for a vendor).
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway import rules
from gateway.cimd.fetch import RULES as FETCH_RULES

#: A value outside the known set.
OTHER = "other"
#: A request with no vendor, or one the managed list does not know.
UNKNOWN_VENDOR = "unknown"
#: The tenant label of the generic profile (no tenants) and of a record without one.
NO_TENANT = "default"
#: The rule label of a record that has none (a request that ended before any stage).
NO_RULE = "none"

#: Methods named by the pass-through counter; any other is ``other``.
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
#: HTTP status classes (RFC 9110 §15).
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


class Labels:
    """The label values one deployment may produce, from its configuration."""

    __slots__ = ("_rules", "_tenants", "_vendors")

    def __init__(
        self,
        *,
        tenants: Iterable[str] = (),
        vendors: Iterable[str] = (),
        rate_limits: Iterable[str] = (),
    ) -> None:
        self._tenants = frozenset(tenants)
        self._vendors = frozenset(vendors)
        known = {rule_id for rule_id in rules.RULES if "<" not in rule_id}
        known.update(f"rate_limit.{name}" for name in rate_limits)
        known.update(FETCH_RULES)
        self._rules = frozenset(known)

    def rule(self, rule_id: str | None) -> str:
        if rule_id is None:
            return NO_RULE
        return rule_id if rule_id in self._rules else OTHER

    def vendor(self, vendor: str | None) -> str:
        return vendor if vendor in self._vendors else UNKNOWN_VENDOR

    def tenant(self, tenant: str | None) -> str:
        if tenant is None:
            return NO_TENANT
        return tenant if tenant in self._tenants else OTHER

    def rate_limit(self, rule_id: str) -> str:
        """The limit's name of a ``rate_limit.<name>`` rule id, when it is a known one."""
        if rule_id in self._rules and rule_id.startswith("rate_limit."):
            return rule_id.removeprefix("rate_limit.")
        return OTHER


def status_class(status: int) -> str:
    """``2xx`` for 200..299, and so on; anything outside 100..599 is ``5xx``: the gateway
    never sends it, so it cannot be what a client saw."""
    return STATUS_CLASSES[status // 100 - 1] if 100 <= status < 600 else "5xx"
