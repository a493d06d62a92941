"""The Keycloak profile: every realm's registration, management and discovery paths.

Keycloak (``../shared/reference/keycloak.md``) serves, per realm:

* ``{prefix}/realms/{realm}/clients-registrations/openid-connect``: OIDC registration
  (RFC 7591), and ``.../openid-connect/{clientId}``: management (RFC 7592);
* the sibling providers ``default`` (Keycloak's own client representation), ``install``
  and ``saml2-entity-descriptor``, which create clients with no OIDC metadata checks: a
  guard that only watches ``openid-connect`` is walked around through them, so they are
  refused (403) unless ``keycloak.allow_providers`` lists them, and then passed through
  unjudged;
* ``{prefix}/realms/{realm}/.well-known/openid-configuration`` (and
  ``oauth-authorization-server``, ``uma2-configuration``, which name the registration
  endpoint too) and, since 26.4, the RFC 8414 path-insertion forms
  ``{prefix}/.well-known/oauth-authorization-server/realms/{realm}``, which the gateway
  answers from the realm's OIDC document for every Keycloak version.

``{prefix}`` is ``upstream.path_prefix`` (``/auth`` before Keycloak 17, or with
``http-relative-path``).  A registration path under any other prefix is refused, not
passed through: a deployment that forgot ``path_prefix`` must not leave every realm's
registration unguarded.  Realm names are
case-sensitive, as in Keycloak; the fixed segments are matched in any letter case (a
spelling Keycloak would not route is judged anyway, which costs nothing).  A realm that
matches a configured tenant only when case is ignored is refused: on a database with a
case-insensitive collation Keycloak might find the tenant's realm under it, and the
request would be judged by the default policy instead of the tenant's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from urllib.parse import quote

from gateway import rules
from gateway.http.routes import PASSTHROUGH, Kind, Target
from gateway.profiles.generic import not_a_client, provider_refused
from gateway.uri.paths import canonical_segments

OIDC_PROVIDER = "openid-connect"
_DISCOVERY = frozenset({"openid-configuration", "oauth-authorization-server"})
#: Realm-local discovery documents: the RFC 8414 / OIDC ones, and UMA 2.0's, which
#: Keycloak also fills with the realm's ``registration_endpoint``.
_REALM_DISCOVERY = _DISCOVERY | {"uma2-configuration"}
_REGISTRATIONS = "clients-registrations"
#: Where a realm's clients are used: authorization, token, pushed authorization, device,
#: revocation (RFC 7009) and introspection (RFC 7662), as the generic profile takes them
#: from discovery; a metadata-document client authenticates at each of them.
_USE = {
    ("protocol", "openid-connect", "auth"): Kind.AUTHORIZE,
    ("protocol", "openid-connect", "token"): Kind.TOKEN,
    ("protocol", "openid-connect", "ext", "par", "request"): Kind.TOKEN,
    ("protocol", "openid-connect", "auth", "device"): Kind.TOKEN,
    ("protocol", "openid-connect", "revoke"): Kind.TOKEN,
    ("protocol", "openid-connect", "token", "introspect"): Kind.TOKEN,
}


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

    def registration_path(self, realm: str | None) -> str:
        """A realm's OIDC registration path; every Keycloak path names its realm."""
        if realm is None:
            raise ValueError("the keycloak profile has no registration path outside a realm")
        return f"{self.prefix}/realms/{_q(realm)}/clients-registrations/{OIDC_PROVIDER}"

    def audience_paths(self, realm: str | None) -> tuple[str, ...]:
        """The realm's issuer (``/realms/<realm>``) and its client endpoints."""
        if realm is None:
            return ()
        issuer = f"{self.prefix}/realms/{_q(realm)}"
        return (issuer, *(issuer + "/" + "/".join(path) for path in _USE))

    def classify(self, raw_path: str) -> Target:
        segments = canonical_segments(raw_path)
        count = len(self._prefix_segments)
        if [s.casefold() for s in segments[:count]] != self._prefix_segments:
            return self._elsewhere(segments)
        rest = segments[count:]
        folded = [s.casefold() for s in rest]
        if len(rest) >= 2 and folded[0] == "realms":
            realm = rest[1]
            if len(rest) >= 3 and folded[2] == _REGISTRATIONS:
                return self._registration(realm, rest[3:])
            use = _USE.get(tuple(folded[2:]))
            if use is not None:
                return Target(use, tenant=realm)
            if len(rest) == 4 and folded[2] == ".well-known" and folded[3] in _REALM_DISCOVERY:
                return self._discovery(
                    realm, f"/realms/{quote(realm, safe='')}/.well-known/{folded[3]}"
                )
        if (
            len(rest) == 4
            and folded[0] == ".well-known"
            and folded[1] in _DISCOVERY
            and folded[2] == "realms"
        ):
            # Served from the realm's own OIDC document, which every Keycloak version has:
            # the path-insertion forms exist upstream only since 26.4, and MCP clients try
            # them first.
            realm = rest[3]
            return self._discovery(
                realm, f"/realms/{quote(realm, safe='')}/.well-known/openid-configuration"
            )
        return self._elsewhere(rest)

    def _elsewhere(self, segments: list[str]) -> Target:
        """A registration path of some realm under a prefix other than the configured one
        (``/auth/realms/x/clients-registrations/...`` with no ``path_prefix``): Keycloak
        may serve it, the gateway cannot judge it as configured, so it is refused."""
        folded = [s.casefold() for s in segments]
        for i in range(len(folded) - 2):
            if folded[i] == "realms" and folded[i + 2] == _REGISTRATIONS:
                return Target(
                    Kind.REFUSE,
                    tenant=segments[i + 1],
                    refusal=rules.KEYCLOAK_PREFIX_MISMATCH.refuse(
                        "no such endpoint: this gateway guards Keycloak's client "
                        f"registration at '{self.prefix or ''}/realms/<realm>/"
                        f"{_REGISTRATIONS}' (upstream.path_prefix)"
                    ),
                )
        return PASSTHROUGH

    def _registration(self, realm: str, rest: list[str]) -> Target:
        wrong = self._wrong_case(realm)
        if wrong is not None:
            return wrong
        if not rest:
            return replace(not_a_client(), tenant=realm)
        provider = rest[0].casefold()
        if provider != OIDC_PROVIDER:
            if provider in self._allow_providers:
                return PASSTHROUGH
            return replace(provider_refused(rest[0]), tenant=realm)
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
        return replace(not_a_client(), tenant=realm)

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
            tenant=realm,
            refusal=rules.TENANT_CASE_MISMATCH.refuse(
                f"realm names are case-sensitive: '{realm}' is not the configured realm "
                f"'{configured}'"
            ),
        )


def _q(segment: str) -> str:
    """One path segment, percent-encoded (RFC 3986 §3.3)."""
    return quote(segment, safe="")
