"""The generic profile: one RFC 7591 registration endpoint, its RFC 7592 management
endpoints below it, and the two discovery documents at the root.

The registration path comes from the upstream's metadata at start-up or from
``upstream.registration_paths``.  Paths are compared in canonical form (see
:mod:`gateway.uri.paths`): every spelling the upstream's router might route to its
registration handler is guarded.  ``<registration path>/<client id>`` is a management
request; anything deeper is refused, never passed through.  When the registration
endpoint is Keycloak's (``.../clients-registrations/openid-connect``), the other
providers beside it (``default``, ``install``, ``saml2-entity-descriptor``) create clients
without any OIDC metadata checks, so they are refused unless allowed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import quote

from gateway import rules
from gateway.http.routes import PASSTHROUGH, Kind, Target
from gateway.uri.paths import canonical_path, canonical_segments

DISCOVERY_PATHS = frozenset(
    {"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"}
)
_KEYCLOAK_PROVIDERS = "/clients-registrations/"


class GenericProfile:
    def __init__(
        self,
        registration_paths: Iterable[str],
        allow_providers: Iterable[str] = (),
        use_paths: Mapping[str, Kind] | None = None,
    ) -> None:
        self.registration_paths = tuple(registration_paths)
        #: The endpoints where a client is used (authorization, token ...), canonical form.
        self._use = {canonical_path(p): kind for p, kind in (use_paths or {}).items()}
        self._use_paths = tuple(use_paths or ())
        self._allow_providers = frozenset(p.casefold() for p in allow_providers)
        # canonical (folded) form -> the path as configured, which is what is forwarded
        self._register = {canonical_path(p): p for p in self.registration_paths}
        self._siblings = {
            canonical.rsplit("/", 1)[0]
            for canonical in self._register
            if canonical.endswith(_KEYCLOAK_PROVIDERS + "openid-connect")
        }
        self._registration_path = self.registration_paths[0] if self.registration_paths else None

    def knows_registration(self) -> bool:
        return bool(self._register)

    def registration_path(self, tenant: str | None) -> str | None:
        """Where the gateway itself registers (a bridged CIMD client): the first path."""
        return self._registration_path

    def audience_paths(self, tenant: str | None) -> tuple[str, ...]:
        """The issuer (the gateway's public URL itself) and the discovered endpoints."""
        return ("", *self._use_paths)

    def classify(self, raw_path: str) -> Target:
        segments = canonical_segments(raw_path)
        folded = "/" + "/".join(segments).casefold()
        configured = self._register.get(folded)
        if configured is not None:
            return Target(Kind.REGISTER, upstream_path=configured)
        use = self._use.get(folded)
        if use is not None:
            return Target(use)
        if folded in DISCOVERY_PATHS:
            return Target(
                Kind.DISCOVERY, upstream_path=folded, registration_path=self._registration_path
            )
        for canonical, path in self._register.items():
            if folded.startswith(canonical + "/"):
                return self._below(segments, canonical, path)
        for parent in self._siblings:
            if folded.startswith(parent + "/"):
                provider = folded[len(parent) + 1 :].split("/", 1)[0]
                if provider not in self._allow_providers:
                    return provider_refused(provider)
        return PASSTHROUGH

    def _below(self, segments: list[str], canonical: str, path: str) -> Target:
        """A path below a registration endpoint: one segment is a client id (RFC 7592 §2),
        anything deeper is not a client configuration endpoint."""
        depth = canonical.count("/")
        rest = segments[depth:]
        if len(rest) != 1:
            return not_a_client()
        client_id = rest[0]
        return Target(
            Kind.MANAGE,
            client_id=client_id,
            upstream_path=f"{path.rstrip('/')}/{quote(client_id, safe='')}",
        )


def provider_refused(provider: str) -> Target:
    return Target(
        Kind.REFUSE,
        refusal=rules.PROVIDER_REFUSED.refuse(
            f"the client registration provider '{provider}' is not allowed here: it creates "
            "clients without the checks of OpenID Connect registration "
            "(keycloak.allow_providers)"
        ),
    )


def not_a_client() -> Target:
    return Target(
        Kind.REFUSE,
        refusal=rules.MANAGEMENT_NOT_A_CLIENT.refuse(
            "no such endpoint: below the registration endpoint there is one client "
            "configuration endpoint per client id (RFC 7592 §2)"
        ),
    )
