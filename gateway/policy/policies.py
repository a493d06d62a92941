"""The policies of one deployment: the default one and one per tenant (Keycloak realm).

Chosen per request by tenant name, exactly as the upstream spells it: Keycloak's realm
names are case-sensitive (``Customers`` is not ``customers``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
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

    def roles(self) -> Iterator[tuple[str, Policy]]:
        """Every policy with the role it plays: ``default``, ``tenant:<realm>``, and the
        policies initial access tokens name (``<role>/token:<name>``)."""
        for role, policy in (
            ("default", self.default),
            *((f"tenant:{realm}", p) for realm, p in sorted(self.tenants.items())),
        ):
            yield role, policy
            for token in policy.initial_access_tokens.tokens:
                if token.policy is not None:
                    yield f"{role}/token:{token.name}", token.policy

    @property
    def revision(self) -> str:
        """The deployment's policy revision: with one policy, its own (the
        ``policy_revision`` every decision's audit event carries); with several (tenants,
        token policies), SHA-256 (hex) over every policy's role and revision.  Either way
        equal wherever the same files are loaded, whatever their paths, so replicas can be
        compared by it."""
        roles = list(self.roles())
        if len(roles) == 1:
            return roles[0][1].revision
        digest = hashlib.sha256()
        for role, policy in roles:
            digest.update(f"{role}\t{policy.revision}\n".encode())
        return digest.hexdigest()

    def sources(self) -> list[str]:
        """The files (or ``<inline>`` names) the policies were read from, each once."""
        return list(dict.fromkeys(policy.source for _, policy in self.roles()))
