"""The policies of one deployment: the default one and one per tenant (Keycloak realm).

Chosen per request by tenant name, exactly as the upstream spells it: Keycloak's realm
names are case-sensitive (``Customers`` is not ``customers``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.policy.model import Policy


@dataclass(frozen=True, slots=True)
class Policies:
    default: Policy
    tenants: Mapping[str, Policy] = field(default_factory=dict)

    def for_tenant(self, tenant: str | None) -> Policy:
        """The tenant's policy, or the default one for a tenant without its own."""
        if tenant is None:
            return self.default
        return self.tenants.get(tenant, self.default)

    def scope(self, tenant: str | None) -> str:
        """Whose counters a request's rate limits and policy tokens use: the tenant's, when
        it has a policy of its own; else the default policy's, shared by every tenant that
        uses it."""
        return tenant if tenant is not None and tenant in self.tenants else ""

    def all(self) -> list[Policy]:
        return [self.default, *self.tenants.values()]
