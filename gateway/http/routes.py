"""Classifying a request once: which part of the gateway handles it.

A guard that compares paths byte for byte is walked around with ``/REG``, ``/reg/``,
``//reg``, ``/%72eg`` or ``/x/../reg`` (see :mod:`gateway.uri.paths`), so every request
path is put in canonical form once and handed to the upstream's profile
(:mod:`gateway.profiles`), which says what it is: a :class:`Target`.  Guarded targets
carry the path to forward upstream in normal form, so what reaches the upstream is
exactly what was judged.  The gateway's own endpoints (``/-/``) are routed by aiohttp
before this.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from gateway.errors import OAuthError


class Kind(Enum):
    REGISTER = "register"  # the registration endpoint (RFC 7591 §3)
    MANAGE = "manage"  # a client configuration endpoint (RFC 7592 §2)
    DISCOVERY = "discovery"  # authorization server metadata (RFC 8414, OIDC Discovery)
    REFUSE = "refuse"  # a path the upstream would route to client creation: never forwarded
    AUTHORIZE = "authorize"  # the authorization endpoint (RFC 6749 §3.1)
    TOKEN = "token"  # noqa: S105 (endpoints a client calls with its credentials: token, PAR)
    PASSTHROUGH = "passthrough"  # everything else: relayed untouched


@dataclass(frozen=True, slots=True)
class Target:
    kind: Kind
    #: The tenant (Keycloak realm) the path belongs to, as the path spells it.
    tenant: str | None = None
    #: For ``MANAGE``: the client id, letter case kept.
    client_id: str | None = None
    #: For guarded kinds: the path sent upstream (gateway-relative, normal form).
    upstream_path: str | None = None
    #: For ``DISCOVERY``: the gateway-relative path of that tenant's registration endpoint.
    registration_path: str | None = None
    #: For ``REFUSE``: the refusal.
    refusal: OAuthError | None = None


PASSTHROUGH = Target(Kind.PASSTHROUGH)


class Profile(Protocol):
    """What a profile knows: how to classify a path, and whether it is complete."""

    def classify(self, raw_path: str) -> Target: ...

    def knows_registration(self) -> bool: ...

    def registration_path(self, tenant: str | None) -> str | None:
        """The tenant's registration path, gateway-relative."""
        ...

    def audience_paths(self, tenant: str | None) -> tuple[str, ...]:
        """The gateway-relative paths naming the tenant's authorization server: its issuer
        first, then the endpoints where clients are used (a client assertion's ``aud``
        names one of them, RFC 7523 §3)."""
        ...


#: Paths whose classification is remembered, and the longest path remembered: a client
#: sends the same few paths (``/authorize``, ``/token``, ``/.well-known/...``) again and
#: again, and whoever sends fresh ones each time only ever empties the cache.
CACHE_SIZE = 4096
CACHE_PATH_LENGTH = 512


class Router:
    """The deployment's profile, behind one method.

    A profile's classification is pure (the same path always gets the same target), so
    it is remembered per path: canonicalizing the path is most of the gateway's own work
    on a pass-through request otherwise."""

    __slots__ = ("_cache", "profile")

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self._cache: dict[str, Target] = {}

    def __bool__(self) -> bool:
        return self.profile.knows_registration()

    def classify(self, raw_path: str) -> Target:
        target = self._cache.get(raw_path)
        if target is None:
            target = self.profile.classify(raw_path)
            # A refusal is an exception, raised once per request: never shared.
            if len(raw_path) <= CACHE_PATH_LENGTH and target.refusal is None:
                if len(self._cache) >= CACHE_SIZE:
                    self._cache.clear()
                self._cache[raw_path] = target
        return target
