"""Initial access tokens issued at run time through the admin API, kept in storage.

A token is stored by its digest (``iat:<sha256 hex>`` -> its record), with an index of
names (``iat:names``: name -> digest) for listing and revoking; its uses are a counter
(``iat-uses:issued:<name>``).  The token itself is shown once, in the answer that creates
it, and kept nowhere.  Names are unique across replicas (``HSETNX``).
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass

from gateway.storage import Storage
from gateway.tokens.secrets import digest, new_token

INDEX = "iat:names"


def record_key(token_digest: bytes) -> str:
    return f"iat:{token_digest.hex()}"


def uses_key(name: str) -> str:
    return f"iat-uses:issued:{name}"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    name: str
    created_at: float
    expires_at: float | None = None
    max_uses: int | None = None
    #: Only registrations for this tenant (Keycloak realm) may use it; ``None``: any.
    tenant: str | None = None

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes) -> IssuedToken | None:
        try:
            data = json.loads(raw)
            return cls(
                name=str(data["name"]),
                created_at=float(data["created_at"]),
                expires_at=None if data.get("expires_at") is None else float(data["expires_at"]),
                max_uses=None if data.get("max_uses") is None else int(data["max_uses"]),
                tenant=None if data.get("tenant") is None else str(data["tenant"]),
            )
        except (ValueError, KeyError, TypeError):
            return None

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


class IssuedTokens:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def create(
        self,
        name: str,
        *,
        expires_in: float | None,
        max_uses: int | None,
        tenant: str | None,
        now: float | None = None,
    ) -> tuple[IssuedToken, str] | None:
        """A new token and its secret; ``None`` when the name is taken."""
        now = time.time() if now is None else now
        token = new_token()
        token_digest = digest(token)
        record = IssuedToken(
            name=name,
            created_at=now,
            expires_at=None if expires_in is None else now + expires_in,
            max_uses=max_uses,
            tenant=tenant,
        )
        if not await self.storage.map_put_new(INDEX, name, token_digest.hex().encode("ascii")):
            return None
        await self.storage.delete(uses_key(name))  # a revoked namesake's count is not ours
        await self.storage.set(record_key(token_digest), record.to_bytes())
        return record, token

    async def find(self, token_digest: bytes) -> IssuedToken | None:
        raw = await self.storage.get(record_key(token_digest))
        return None if raw is None else IssuedToken.from_bytes(raw)

    async def list(self) -> list[tuple[IssuedToken, int]]:
        """Every issued token with its uses, by name; never a secret or digest."""
        out = []
        index = await self.storage.map_get_all(INDEX)
        for name in sorted(index):
            try:
                token_digest = bytes.fromhex(index[name].decode("ascii"))
            except ValueError:
                continue
            record = await self.find(token_digest)
            if record is not None:
                out.append((record, await self.storage.counter_get(uses_key(name))))
        return out

    async def revoke(self, name: str) -> bool:
        index = await self.storage.map_get_all(INDEX)
        hex_digest = index.get(name)
        if hex_digest is None:
            return False
        with contextlib.suppress(ValueError):
            await self.storage.delete(record_key(bytes.fromhex(hex_digest.decode("ascii"))))
        await self.storage.map_delete(INDEX, name)
        await self.storage.delete(uses_key(name))
        return True
