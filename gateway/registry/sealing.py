"""Registration access tokens at rest: sealed with Fernet (AES-128-CBC + HMAC-SHA256).

The registry keeps each client's newest registration access token (RFC 7592 §3) so that
cleanup, eviction and an administrator's delete can call ``DELETE`` on the client's
configuration endpoint.  The token is a credential to change or delete the client, so it
is never stored in clear: ``registry.key_env`` names an environment variable holding one
or more Fernet keys, comma-separated (``dcr-gateway registry-key`` makes one).  The first
seals; every one unseals, so a key is rotated by putting the new one first and keeping the
old one until the rotation job has re-sealed every token (each job run does).

Without a key the registry keeps no tokens: approval and blocking still work (the gateway
refuses pending and rejected clients at the authorization and token endpoints itself), but
deleting upstream is impossible, and such deletes are reported, never faked.  A token
sealed with a key no longer configured cannot be read: the same.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class Sealer:
    """Seals and unseals tokens with the configured keys; with none, keeps nothing."""

    def __init__(self, keys: tuple[bytes, ...]) -> None:
        self._fernet = MultiFernet([Fernet(k) for k in keys]) if keys else None
        self._first = Fernet(keys[0]) if keys else None

    @property
    def enabled(self) -> bool:
        return self._fernet is not None

    def seal(self, token: str) -> str | None:
        if self._fernet is None:
            return None
        return self._fernet.encrypt(token.encode("utf-8")).decode("ascii")

    def unseal(self, sealed: str | None) -> str | None:
        """The token, or ``None`` when there is none or no configured key opens it."""
        if sealed is None or self._fernet is None:
            return None
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError):
            return None

    def reseal(self, sealed: str) -> str | None:
        """``sealed`` under the first key when an older key sealed it; ``None`` when it is
        already the first key's, or no configured key opens it."""
        if self._fernet is None or self._first is None:
            return None
        try:
            self._first.decrypt(sealed.encode("ascii"))
            return None
        except (InvalidToken, ValueError):
            pass
        try:
            return self._fernet.rotate(sealed.encode("ascii")).decode("ascii")
        except (InvalidToken, ValueError):
            return None


def parse_keys(value: str) -> tuple[bytes, ...]:
    """Comma-separated Fernet keys; ``ValueError`` naming the bad one's position."""
    keys = []
    for index, part in enumerate(p.strip() for p in value.split(",")):
        if not part:
            continue
        try:
            Fernet(part.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise ValueError(
                f"key {index + 1} is not a Fernet key (32 bytes, url-safe base64; "
                "make one with `dcr-gateway registry-key`)"
            ) from None
        keys.append(part.encode("ascii"))
    return tuple(keys)


def new_key() -> str:
    return Fernet.generate_key().decode("ascii")
