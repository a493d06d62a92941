"""Which initial access token a registration carries, and counting its uses (RFC 7591 §3).

A registration may carry ``Authorization: Bearer <token>``.  The token must be one of the
policy's (``initial_access_tokens.tokens``, by SHA-256) or one issued by the admin API
(for any tenant, or for this one); a token that is neither is refused even when tokens are
not required, since a client presenting credentials the gateway does not know is either
misconfigured or guessing.  Missing (when required), unknown, expired or used up: 401
``invalid_token``; the answer says which, the audit event names the token, never its
secret.

A use is counted only when the registration is allowed and the upstream created the
client: the use is *reserved* (an atomic capped increment in storage) just before the
request is forwarded, so replicas racing for a token's last use cannot both win, and
given back when the upstream does not create the client.  When the outcome is unknown (a
timeout after sending) it stays counted.  Token checks need storage for use counts and
issued tokens; when storage fails they fail closed whatever ``on_storage_error`` says.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

from gateway import rules
from gateway.errors import OAuthError
from gateway.policy.model import Policy, TokenEntry
from gateway.storage import Storage, StorageError
from gateway.tokens.issued import IssuedTokens, uses_key
from gateway.tokens.secrets import bearer_token, digest, same


@dataclass(frozen=True, slots=True)
class Presented:
    """A valid token a request carries."""

    name: str
    #: The storage counter of its uses.
    counter: str
    max_uses: int | None
    #: When it stops being valid (Unix time), if ever.
    expires_at: float | None = None
    #: The policy its registrations are judged by, when it names one.
    policy: Policy | None = None


def policy_uses_key(scope: str, name: str) -> str:
    return f"iat-uses:policy:{scope}:{name}"


def _match(entries: tuple[TokenEntry, ...], token_digest: bytes) -> TokenEntry | None:
    """The entry with this digest; every entry is compared, in constant time each."""
    found = None
    for entry in entries:
        if same(entry.digest, token_digest):
            found = entry
    return found


async def identify(
    authorization: list[str],
    policy: Policy,
    *,
    scope: str,
    tenant: str | None,
    storage: Storage,
) -> Presented | None:
    """Which token a registration request carries; ``None`` when it carries none and none
    is required.  Raises the 401 refusal for a missing, malformed or unknown token (or 503
    when storage fails).  Whether the token may still be used is :func:`admit`'s question,
    asked once its name is recorded, so a refusal for an expired token names the token."""
    token = bearer_token(authorization)
    if token is None:
        if policy.initial_access_tokens.required:
            raise rules.TOKEN_MISSING.refuse(
                "this registration endpoint requires an initial access token "
                "(Authorization: Bearer, RFC 7591 section 3)"
            )
        return None
    token_digest = digest(token)
    entry = _match(policy.initial_access_tokens.tokens, token_digest)
    if entry is not None:
        return Presented(
            entry.name,
            policy_uses_key(scope, entry.name),
            entry.max_uses,
            entry.expires,
            entry.policy,
        )
    try:
        issued = await IssuedTokens(storage).find(token_digest)
    except StorageError as exc:
        raise rules.storage_unavailable() from exc
    if issued is None or (issued.tenant is not None and issued.tenant != tenant):
        raise rules.TOKEN_UNKNOWN.refuse(
            "the initial access token is not known here (never issued, revoked, or "
            "for another tenant)"
        )
    return Presented(issued.name, uses_key(issued.name), issued.max_uses, issued.expires_at)


async def admit(presented: Presented, storage: Storage, *, now: float | None = None) -> None:
    """Refuse a known token that has expired or has no uses left (401), or 503 when its
    use count cannot be read."""
    now = time.time() if now is None else now
    if presented.expires_at is not None and now >= presented.expires_at:
        raise rules.TOKEN_EXPIRED.refuse(f"the initial access token '{presented.name}' has expired")
    limit = presented.max_uses
    if limit is None:
        return
    try:
        used = await storage.counter_get(presented.counter)
    except StorageError as exc:
        raise rules.storage_unavailable() from exc
    if used >= limit:
        raise _used_up(presented.name)


async def reserve_use(presented: Presented, storage: Storage) -> None:
    """Take one use of the token, atomically; 401 when another request took the last."""
    try:
        taken = await storage.counter_reserve(presented.counter, presented.max_uses)
    except StorageError as exc:
        raise rules.storage_unavailable() from exc
    if taken is None:
        raise _used_up(presented.name)


async def release_use(presented: Presented, storage: Storage) -> None:
    with contextlib.suppress(StorageError):  # else the use stays counted: fewer, not more
        await storage.counter_release(presented.counter)


def _used_up(name: str) -> OAuthError:
    return rules.TOKEN_USED_UP.refuse(
        f"the initial access token '{name}' has been used as often as it may"
    )
