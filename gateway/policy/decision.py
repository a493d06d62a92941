"""The policy engine's interface: what it is asked, and what it answers.

Like Envoy's ext_authz or OPA, the engine is a pure decision point: a
:class:`RequestContext` and the client metadata go in, a :class:`Decision` comes out.  No
HTTP objects, no I/O; the same call serves the gateway, ``dcr-gateway explain`` and the
policy test cases.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.errors import OAuthError


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Facts about the request that are not client metadata."""

    client_ip: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on one registration request.

    ``rule`` is a stable id (``mode.disabled``, ``redirect_uri.not_allowed``, ``allow.managed``,
    ...) documented in ``docs/policy.md``; ``matched`` says what allowed or refused it (a
    managed entry ``managed:<id>``, a custom pattern ``custom:<pattern>``, a block pattern);
    ``metadata`` is what is forwarded when allowed: the request with defaults injected and
    refused redirect URIs dropped.
    """

    allowed: bool
    rule: str
    description: str
    metadata: dict[str, Any]
    error: OAuthError | None = None
    matched: tuple[str, ...] = ()
    vendor: str | None = None
    dropped_redirect_uris: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @classmethod
    def deny(
        cls,
        error: OAuthError,
        metadata: dict[str, Any],
        *,
        matched: tuple[str, ...] = (),
        vendor: str | None = None,
    ) -> Decision:
        return cls(
            allowed=False,
            rule=error.rule,
            description=error.description,
            metadata=metadata,
            error=error,
            matched=matched,
            vendor=vendor,
        )
