"""Token secrets: how they are made, hashed, read from a request and compared.

Only SHA-256 digests are ever stored or configured: a token is 256 random bits, so a plain
hash is as good as a slow one (there is nothing to guess), and it lets a policy file be
public.  Comparisons are constant-time (``hmac.compare_digest``) over the digests.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from gateway import rules
from gateway.errors import OAuthError

#: RFC 6750 §2.1: ``Bearer`` then one b64token.
_BEARER_RE = re.compile(r"^[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9\-._~+/]+=*) *$")
#: Issued tokens carry a recognisable prefix (secret scanners find them in leaks).
ISSUED_PREFIX = "dcrg_"


def new_token() -> str:
    """A new token: 256 random bits, URL-safe."""
    return ISSUED_PREFIX + secrets.token_urlsafe(32)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def same(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def bearer_token(values: list[str]) -> str | None:
    """The bearer token of a request's ``Authorization`` headers; ``None`` when there is
    none; a refusal when they are not exactly one well-formed ``Bearer`` credential."""
    if not values:
        return None
    if len(values) > 1:
        raise _malformed("more than one Authorization header")
    match = _BEARER_RE.match(values[0])
    if match is None:
        raise _malformed("the Authorization header is not one Bearer token (RFC 6750 §2.1)")
    return match.group(1)


def _malformed(why: str) -> OAuthError:
    return rules.TOKEN_MALFORMED.refuse(why)
