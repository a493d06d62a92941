"""Recording a client the upstream just created (or updated) in the registry.

The entry is built from the judged request and the upstream's answer: the client id, its
configuration endpoint (``registration_client_uri``, RFC 7592 §3, as a gateway-relative
path) and its registration access token, sealed.  Its first status is ``pending`` when the
tenant's policy requires approval and no ``auto_approve`` condition holds, else ``active``.
A storage error here cannot undo the registration: it is logged and noted in the audit
event (``registry_error``), and the client is then one the registry does not know.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from yarl import URL

from gateway.audit.events import AuditRecord
from gateway.audit.logging import log
from gateway.policy.model import AutoApprove, Policy
from gateway.registration.forward import plain_path_below
from gateway.registry.entry import ClientEntry, Source, Status
from gateway.state import Gateway
from gateway.storage import StorageError


def first_status(policy: Policy, *, managed: bool, had_token: bool) -> Status:
    approval = policy.approval
    if not approval.required:
        return Status.ACTIVE
    if managed and AutoApprove.MANAGED in approval.auto_approve:
        return Status.ACTIVE
    if had_token and AutoApprove.TOKEN in approval.auto_approve:
        return Status.ACTIVE
    return Status.PENDING


def management_path(gateway: Gateway, uri: object) -> str | None:
    """The gateway-relative path of a (published) ``registration_client_uri``."""
    if not isinstance(uri, str) or not uri:
        return None
    tail = plain_path_below(uri, gateway.settings.public_url)
    if tail is not None:  # the common case: what parsing would give, without parsing
        return tail
    try:
        path = URL(uri).raw_path
    except ValueError:
        return None
    base = gateway.settings.public_url.raw_path.rstrip("/")
    if base and path.startswith(base + "/"):
        path = path[len(base) :]
    return path or None


async def record_client(
    gateway: Gateway,
    policy: Policy,
    tenant: str | None,
    document: Mapping[str, Any],
    record: AuditRecord,
    *,
    vendor_key: str,
    managed: bool,
    token_name: str | None,
    source: Source = Source.DCR,
) -> ClientEntry | None:
    client_id = record.client_id
    if not client_id:
        return None
    token = document.get("registration_access_token")
    now = time.time()
    entry = ClientEntry(
        client_id=client_id,
        tenant=tenant,
        source=source,
        vendor=record.vendor or "unknown",
        vendor_key=vendor_key,
        client_name=record.client_name,
        redirect_uris=tuple(record.redirect_uris or ()),
        software_id=record.software_id,
        registered_at=now,
        registered_ip=record.client_ip,
        initial_access_token_name=token_name,
        status=first_status(policy, managed=managed, had_token=token_name is not None),
        management_path=management_path(gateway, document.get("registration_client_uri")),
        sealed_token=gateway.sealer.seal(token) if isinstance(token, str) and token else None,
        status_changed_at=now,
    )
    try:
        await gateway.registry.add(entry)
    except StorageError as exc:
        record.extra["registry_error"] = str(exc)[:200]
        log().error("client_not_recorded", client_id=client_id, reason=str(exc)[:200])
        return None
    gateway.gate.forget(tenant, client_id)
    record.extra["client_status"] = entry.status.value
    return entry


async def note_management(
    gateway: Gateway,
    tenant: str | None,
    client_id: str,
    document: Mapping[str, Any] | None,
    *,
    deleted: bool = False,
) -> None:
    """Keep the registry in step with an RFC 7592 answer: a rotated registration access
    token (Keycloak rotates it on every call), a new name or redirect URIs, or the client
    deleting itself.  Clients the registry does not know are left alone."""
    registry = gateway.registry
    try:
        for _ in range(3):  # compare-and-set; retried when a job changed it meanwhile
            entry = await registry.get(tenant, client_id)
            if entry is None:
                return
            if deleted:
                if entry.status is Status.DELETED:
                    return
                changed = entry.with_(
                    status=Status.DELETED,
                    status_changed_at=time.time(),
                    reason="deleted_by_client",
                    sealed_token=None,
                    deleting=False,
                )
            else:
                changed = _updated(gateway, entry, document or {})
                if changed == entry:
                    return
            if await registry.replace(entry, changed):
                if deleted and entry.live:
                    await registry.release(entry.tenant, entry.vendor_key)
                gateway.gate.forget(tenant, client_id)
                return
    except StorageError as exc:
        log().warning("client_registry_not_updated", client_id=client_id, reason=str(exc)[:200])


def _updated(gateway: Gateway, entry: ClientEntry, document: Mapping[str, Any]) -> ClientEntry:
    changes: dict[str, Any] = {}
    token = document.get("registration_access_token")
    if isinstance(token, str) and token and gateway.sealer.unseal(entry.sealed_token) != token:
        changes["sealed_token"] = gateway.sealer.seal(token)
    name = document.get("client_name")
    if isinstance(name, str) and name != entry.client_name:
        changes["client_name"] = name
    uris = document.get("redirect_uris")
    valid = isinstance(uris, list) and all(isinstance(u, str) for u in uris)
    if valid and tuple(uris) != entry.redirect_uris:
        changes["redirect_uris"] = tuple(uris)
    path = management_path(gateway, document.get("registration_client_uri"))
    if path is not None and path != entry.management_path:
        changes["management_path"] = path
    return entry.with_(**changes) if changes else entry
