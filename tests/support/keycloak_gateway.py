"""The gateway's ``keycloak`` profile in front of the Keycloak stand-in, for integration tests.

The stand-in's issuers must name the gateway (``issuer_base=<gateway public URL>``) and the
gateway must know the stand-in's address, so the gateway's port is chosen first
(:func:`tests.support.upstream.free_port`), the stand-in started with it, and the gateway then
started on that port (``gateway_factory(..., port=port)``). :class:`KeycloakRoute` builds the
gateway-side URLs of a realm; :func:`raw` sends a request target byte for byte (aiohttp's client
would resolve ``..`` and ``//`` before sending).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.support.keycloak import REGISTRATION_PATH, KeycloakStandIn

#: Rules and error codes a refusal of the keycloak profile names.
PROVIDER_REFUSED = "provider.not_allowed"
CASE_MISMATCH = "tenant.case_mismatch"


@dataclass(frozen=True)
class KeycloakRoute:
    """URLs of one realm, as seen through the gateway at ``gateway_url``."""

    gateway_url: str
    prefix: str = ""

    def realm_url(self, realm: str) -> str:
        """``{gateway}{prefix}/realms/{realm}``: what an MCP client is given (the issuer)."""
        return f"{self.gateway_url}{self.prefix}/realms/{realm}"

    def registration(self, realm: str) -> str:
        return self.realm_url(realm) + REGISTRATION_PATH

    def discovery(self, realm: str) -> dict[str, str]:
        """Every URL Keycloak (26.4+) serves the realm's metadata at, by form."""
        base = f"{self.gateway_url}{self.prefix}"
        return {
            "realm": self.realm_url(realm) + "/.well-known/openid-configuration",
            "realm-rfc8414": self.realm_url(realm) + "/.well-known/oauth-authorization-server",
            "realm-uma2": self.realm_url(realm) + "/.well-known/uma2-configuration",
            "rfc8414": f"{base}/.well-known/oauth-authorization-server/realms/{realm}",
            "oidc-insertion": f"{base}/.well-known/openid-configuration/realms/{realm}",
        }


def forwarded_as(gateway_url: str) -> dict[str, str]:
    """The headers with which the stand-in writes the gateway's URLs into its documents."""
    scheme, _, authority = gateway_url.partition("://")
    return {"X-Forwarded-Host": authority, "X-Forwarded-Proto": scheme}


def rule_of(answer: dict[str, Any]) -> str:
    """The rule a gateway refusal names at the end of its ``error_description``."""
    description = str(answer.get("error_description", ""))
    assert description.endswith(")") and "(rule " in description, answer
    return description.rsplit("(rule ", 1)[1][:-1]


def sibling_total(standin: KeycloakStandIn) -> int:
    return sum(standin.sibling_calls().values())
