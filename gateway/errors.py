"""Every error the gateway answers on the wire, one class per error code and status.

A refusal is an exception carrying the status, the OAuth ``error`` code, a description
that says which rule refused and why, and the stable ``rule`` id that goes into the audit
event.  The bodies follow RFC 7591 §3.2.2: ``{"error", "error_description"}`` as
``application/json`` with ``Cache-Control: no-store``.  Nothing here knows about aiohttp,
so the pure policy engine can name errors too; :mod:`gateway.http.responses` renders them.

The description on the wire is restricted to the characters RFC 6749 §5.2 (and RFC 7591
§3.2.2, which refers to it) allow: ``%x20-21 / %x23-5B / %x5D-7E``.  Client-supplied text
inside it (a name, a URI) is escaped to that set by :func:`wire_description`; the full
description, with the offending value as sent, goes into the audit event instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import ClassVar

#: Longest ``error_description`` sent on the wire; the audit event keeps the whole text.
MAX_WIRE_DESCRIPTION = 500

NO_STORE_HEADERS: Mapping[str, str] = {
    "Content-Type": "application/json",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
}


class OAuthError(Exception):
    """Base of every wire error; subclasses fix ``status`` and ``error``."""

    status: ClassVar[int] = 400
    error: ClassVar[str] = "invalid_request"

    def __init__(
        self,
        description: str,
        *,
        rule: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.description = description
        self.rule = rule
        self.extra_headers: dict[str, str] = dict(headers or {})

    def body(self) -> bytes:
        """The JSON body; the description ends by naming the rule, so a client developer
        can look it up in ``docs/policy.md`` and an operator can find the audit event."""
        described = f"{wire_description(self.description)} (rule {wire_description(self.rule)})"
        return json.dumps({"error": self.error, "error_description": described}).encode("ascii")

    def headers(self) -> dict[str, str]:
        return {**NO_STORE_HEADERS, **self.extra_headers}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.rule!r}, {self.description!r})"


class InvalidRedirectURI(OAuthError):
    """A redirect URI is malformed or not allowed by policy (RFC 7591 §3.2.2)."""

    error = "invalid_redirect_uri"


class InvalidClientMetadata(OAuthError):
    """Other metadata is invalid or refused; also a body that is not a JSON object
    with well-typed fields (RFC 7591 §3.2.2)."""

    error = "invalid_client_metadata"


class InvalidSoftwareStatement(OAuthError):
    """The software statement is not a valid JWT (RFC 7591 §3.2.2)."""

    error = "invalid_software_statement"


class UnapprovedSoftwareStatement(OAuthError):
    """The software statement is valid but not approved (RFC 7591 §3.2.2)."""

    error = "unapproved_software_statement"


class AccessDenied(OAuthError):
    """Registration is refused outright by policy; wording of RFC 6749 §4.1.2.1."""

    status = 403
    error = "access_denied"


class InvalidToken(OAuthError):
    """A bearer token is missing, unknown, expired or used up (RFC 6750 §3.1)."""

    status = 401
    error = "invalid_token"

    def __init__(self, description: str, *, rule: str) -> None:
        super().__init__(
            description,
            rule=rule,
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )


class InvalidClient(OAuthError):
    """The token endpoint refuses the client (RFC 6749 §5.2 ``invalid_client``, 401): it
    awaits approval, was rejected, or was deleted.  Clients such as Claude take exactly
    this answer as the signal to register again."""

    status = 401
    error = "invalid_client"


class RateLimited(OAuthError):
    """Too many requests (RFC 6585 §4); ``Retry-After`` in whole seconds."""

    status = 429
    error = "rate_limited"

    def __init__(self, description: str, *, rule: str, retry_after: int) -> None:
        super().__init__(description, rule=rule, headers={"Retry-After": str(max(1, retry_after))})


class InvalidRequest(OAuthError):
    """A request the gateway cannot read (RFC 6749 §5.2 ``invalid_request``)."""


class NotFound(OAuthError):
    """No such endpoint where the gateway guards a path space (RFC 9110 §15.5.5)."""

    status = 404


class Conflict(OAuthError):
    """The resource exists already (RFC 9110 §15.5.10)."""

    status = 409


class PayloadTooLarge(OAuthError):
    """The body is larger than ``limits.max_body_bytes`` (RFC 9110 §15.5.14)."""

    status = 413


class RequestTimeout(OAuthError):
    """The client did not send its whole body in time (RFC 9110 §15.5.9)."""

    status = 408


class UnsupportedMediaType(OAuthError):
    """Not ``application/json``, or a content coding (RFC 9110 §15.5.16)."""

    status = 415


class MethodNotAllowed(OAuthError):
    """Only POST registers a client (RFC 7591 §3.1; RFC 9110 §15.5.6)."""

    status = 405

    def __init__(self, description: str, *, rule: str, allow: str) -> None:
        super().__init__(description, rule=rule, headers={"Allow": allow})


class TemporarilyUnavailable(OAuthError):
    """Storage is unreachable and the gateway fails closed (RFC 6749 §4.1.2.1)."""

    status = 503
    error = "temporarily_unavailable"


class BadGateway(TemporarilyUnavailable):
    """The upstream could not be reached or answered something unusable."""

    status = 502


class GatewayTimeout(TemporarilyUnavailable):
    """The upstream did not answer within ``upstream.timeout``."""

    status = 504


_WIRE_SAFE = frozenset(chr(c) for c in range(0x20, 0x7F)) - {'"', "\\"}
_WIRE_WORDS = {"\u00a7": "section ", '"': "'"}


_LINE_BREAKING = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def quote_value(value: str, limit: int = 200) -> str:
    """A client-supplied value quoted for a description: as it was sent, cut to ``limit``
    characters, except that control characters and line separators are spelled
    ``U+XXXX``, so a description is always one line for any log reader.  Not ``repr``: an
    invisible character stays itself in the audit event (whose JSON escapes it) instead of
    becoming a backslash sequence the client never sent; :func:`wire_description` spells it
    out on the wire."""
    text = value if len(value) <= limit else value[:limit] + "..."
    return "'" + _LINE_BREAKING.sub(lambda m: f"U+{ord(m.group()):04X}", text) + "'"


def wire_description(text: str) -> str:
    """``text`` within RFC 6749 §5.2's ``error_description`` character set.

    ``§`` becomes ``section``, a double quote a single one, and every other character
    outside ``%x20-21 / %x23-5B / %x5D-7E`` (non-ASCII, controls, backslash) its ``U+XXXX``
    name, so a client-supplied value can neither break the set nor hide what it contained.
    """
    if len(text) > MAX_WIRE_DESCRIPTION:
        text = text[: MAX_WIRE_DESCRIPTION - 3] + "..."
    if all(ch in _WIRE_SAFE for ch in text):
        return text
    return "".join(
        ch if ch in _WIRE_SAFE else _WIRE_WORDS.get(ch, f"U+{ord(ch):04X}") for ch in text
    )
