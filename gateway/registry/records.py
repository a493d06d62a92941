"""A client's last known metadata, so a management update can say what it changed.

RFC 7592 §2.2: an update carries the whole client.  The audit event of an update names
the fields whose values differ from what the gateway last saw for that client (at
registration, a read or an earlier update).  Only descriptive fields are kept: never a
secret, a registration access token or keys.  Losing a record (storage down, a client
registered before the gateway) only means an update's changes are unknown
(``changes: null``), never a refusal.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from gateway import fastjson
from gateway.audit.logging import log
from gateway.storage import Storage, StorageError

#: The fields kept and compared: what a consent screen shows and where codes go.
TRACKED_FIELDS = (
    "client_name",
    "redirect_uris",
    "post_logout_redirect_uris",
    "grant_types",
    "response_types",
    "token_endpoint_auth_method",
    "scope",
    "software_id",
    "software_version",
    "application_type",
    "client_uri",
    "logo_uri",
    "policy_uri",
    "tos_uri",
    "jwks_uri",
    "sector_identifier_uri",
    "request_uris",
    "contacts",
)


def tracked(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The tracked fields of ``metadata`` (language-tagged names included)."""
    return {
        key: value
        for key, value in metadata.items()
        if key.split("#", 1)[0] in TRACKED_FIELDS and key != "client_secret"
    }


def changes(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> dict[str, Any] | None:
    """``{field: {"from": old, "to": new}}`` for every tracked field that differs, or
    ``None`` when nothing is known of ``before``."""
    if before is None:
        return None
    new = tracked(after)
    return {
        key: {"from": before.get(key), "to": new.get(key)}
        for key in sorted(set(before) | set(new))
        if before.get(key) != new.get(key)
    }


class ClientRecords:
    """Tracked metadata per (tenant, client id), in the deployment's storage."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    @staticmethod
    def _key(tenant: str | None, client_id: str) -> str:
        return f"client:{tenant or ''}:{client_id}"

    async def get(self, tenant: str | None, client_id: str) -> dict[str, Any] | None:
        try:
            raw = await self.storage.get(self._key(tenant, client_id))
        except StorageError as exc:
            log().warning("client_record_unavailable", reason=str(exc)[:200])
            return None
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    async def put(self, tenant: str | None, client_id: str, metadata: Mapping[str, Any]) -> None:
        try:
            await self.storage.set(self._key(tenant, client_id), fastjson.dumps(tracked(metadata)))
        except StorageError as exc:
            log().warning("client_record_not_saved", reason=str(exc)[:200])

    async def delete(self, tenant: str | None, client_id: str) -> None:
        try:
            await self.storage.delete(self._key(tenant, client_id))
        except StorageError as exc:
            log().warning("client_record_not_deleted", reason=str(exc)[:200])
