"""The state of one decision in progress, shared by the engine's checks.

Each check reads the metadata and what earlier checks found, and either adds to it or
raises :class:`Refused`; the engine turns the first refusal into a denying
:class:`~gateway.policy.decision.Decision`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.errors import OAuthError, quote_value
from gateway.policy.model import ManagedClient
from gateway.uri.parse import RedirectURI


class Refused(Exception):
    """A check refused the request; ``matched`` says what it matched (if anything)."""

    def __init__(self, error: OAuthError, matched: tuple[str, ...] = ()) -> None:
        self.error = error
        self.matched = matched


@dataclass(slots=True)
class Work:
    """What the checks have found so far."""

    metadata: dict[str, Any]
    matched: list[str] = field(default_factory=list)
    kinds: set[str] = field(default_factory=set)
    dropped: list[str] = field(default_factory=list)
    accepted: list[RedirectURI] = field(default_factory=list)
    #: The managed entry the request is, once a name, software_id or redirect URI says so.
    vendor: ManagedClient | None = None
    notes: list[str] = field(default_factory=list)


def show(value: str, limit: int = 200) -> str:
    """A value quoted for an error description (:func:`gateway.errors.quote_value`)."""
    return quote_value(value, limit)


def listing(values: Any) -> str:
    return ", ".join(sorted(values)) or "(none)"
