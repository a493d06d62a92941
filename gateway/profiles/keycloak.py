"""The Keycloak profile: every realm's registration, management and discovery paths.

Keycloak (``../shared/reference/keycloak.md``) serves, per realm:

* ``{prefix}/realms/{realm}/clients-registrations/openid-connect``: OIDC registration
  (RFC 7591), and ``.../openid-connect/{clientId}``: management (RFC 7592);
* the sibling providers ``default`` (Keycloak's own client representation), ``install``
  and ``saml2-entity-descriptor``, which create clients with no OIDC metadata checks: a
  guard that only watches ``openid-connect`` is walked around through them, so they are
  refused (403) unless ``keycloak.allow_providers`` lists them, and then passed through
  unjudged;
* ``{prefix}/realms/{realm}/.well-known/openid-configuration`` and, since 26.4, the
  RFC 8414 path-insertion form ``{prefix}/.well-known/oauth-authorization-server/realms/{realm}``.

``{prefix}`` is ``upstream.path_prefix`` (``/auth`` before Keycloak 17).  Realm names are
case-sensitive, as in Keycloak; the fixed segments are matched in any letter case (a
spelling Keycloak would not route is judged anyway, which costs nothing).  A realm that
matches a configured tenant only when case is ignored is refused: on a database with a
case-insensitive collation Keycloak might find the tenant's realm under it, and the
request would be judged by the default policy instead of the tenant's.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote

from gateway import rules
from gateway.http.routes import PASSTHROUGH, Kind, Target
from gateway.profiles.generic import not_a_client, provider_refused
from gateway.uri.paths import canonical_segments

OIDC_PROVIDER = "openid-connect"
_DISCOVERY = frozenset({"openid-configuration", "oauth-authorization-server"})


class KeycloakProfile:
    def __init__(
        self,
        path_prefix: str = "",
        tenants: Iterable[str] = (),
        allow_providers: Iterable[str] = (OIDC_PROVIDER,),
    ) -> None:
        self.prefix = path_prefix.rstrip("/")
        self._prefix_segments = [s.casefold() for s in self.prefix.split("/") if s]
        self._tenants = frozenset(tenants)
        self._folded_tenants = {t.casefold(): t for t in self._tenants}
        self._allow_providers = frozenset(p.casefold() for p in allow_providers)

    def knows_registration(self) -> bool:
        return True

    def registration_path(self, realm: str) -> str:
        return f"{self.prefix}/realms/{_q(realm)}/clients-registrations/{OIDC_PROVIDER}"

    def classify(self, raw_path: str) -> Target:
        segments = canonical_segments(raw_path)
        count = len(self._prefix_segments)
        if [s.casefold() for s in segments[:count]] != self._prefix_segments:
            return PASSTHROUGH
        rest = segments[count:]
        folded = [s.casefold() for s in rest]
        if len(rest) >= 2 and folded[0] == "realms":
            realm = rest[1]
            if len(rest) >= 3 and folded[2] == "clients-registrations":
                return self._registration(realm, rest[3:]) or self._wrong_case(realm)
            if len(rest) == 4 and folded[2] == ".well-known" and folded[3] in _DISCOVERY:
                return self._discovery(
                    realm, f"/realms/{quote(realm, safe='')}/.well-known/{folded[3]}"
                )
        if (
            len(rest) == 4
            and folded[0] == ".well-known"
            and folded[1] in _DISCOVERY
            and folded[2] == "realms"
        ):
            realm = rest[3]
            return self._discovery(
                realm, f"/.well-known/{folded[1]}/realms/{quote(realm, safe='')}"
            )
        return PASSTHROUGH

    def _registration(self, realm: str, rest: list[str]) -> Target:
        wrong = self._wrong_case(realm)
        if wrong is not None:
            return wrong
        if not rest:
            return not_a_client()
        provider = rest[0].casefold()
        if provider != OIDC_PROVIDER:
            if provider in self._allow_providers:
                return PASSTHROUGH
            return provider_refused(rest[0])
        base = self.registration_path(realm)
        if len(rest) == 1:
            return Target(Kind.REGISTER, tenant=realm, upstream_path=base)
        if len(rest) == 2:
            client_id = rest[1]
            return Target(
                Kind.MANAGE,
                tenant=realm,
                client_id=client_id,
                upstream_path=f"{base}/{_q(client_id)}",
            )
        return not_a_client()

    def _discovery(self, realm: str, path: str) -> Target:
        wrong = self._wrong_case(realm)
        if wrong is not None:
            return wrong
        return Target(
            Kind.DISCOVERY,
            tenant=realm,
            upstream_path=self.prefix + path,
            registration_path=self.registration_path(realm),
        )

    def _wrong_case(self, realm: str) -> Target | None:
        if realm in self._tenants:
            return None
        configured = self._folded_tenants.get(realm.casefold())
        if configured is None:
            return None
        return Target(
            Kind.REFUSE,
            refusal=rules.TENANT_CASE_MISMATCH.refuse(
                f"realm names are case-sensitive: '{realm}' is not the configured realm "
                f"'{configured}'"
            ),
        )


def _q(segment: str) -> str:
    """One path segment, percent-encoded (RFC 3986 §3.3)."""
    return quote(segment, safe="")
