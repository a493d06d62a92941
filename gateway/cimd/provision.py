"""The bridged client upstream: registering it for a document, and updating it when the
document changes.

Registration goes through the same controls as a client's own (rate limits, quotas, the
registry) and is audited as a ``registration`` with ``source: cimd``.  The upstream client
is registered from the judged document, with two changes:

* loopback-only redirect URIs without an ``application_type`` make it ``native``
  (RFC 8252 §7.3: it picks the port at run time, which a web client may not);
* a ``private_key_jwt`` client becomes a ``client_secret_basic`` one: the upstream never
  sees the client's keys (the gateway verifies its assertions, :mod:`gateway.cimd.
  client_auth`), and the secret it issues is kept by the gateway only, sealed
  (:mod:`gateway.registry.sealing`) in the document's mapping.

A changed document (judged again and allowed) updates the same upstream client with RFC
7592 §2.2 ``PUT`` and the registration access token the registry keeps, audited as
``client.updated`` with ``source: cimd``; where that cannot be done (no token kept, no
configuration endpoint, the upstream refuses, or the client changes between public and
confidential) a new client is registered instead, and the registration names the one it
replaces, which cleanup then removes like any idle client.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from gateway import rules
from gateway.audit.events import MANAGEMENT_EVENTS, REGISTRATION_EVENT, AuditRecord
from gateway.errors import OAuthError
from gateway.http.routes import Target
from gateway.oauth.body import serialize
from gateway.policy.decision import Decision
from gateway.policy.model import Policy
from gateway.ratelimit.keys import RateFacts, vendor_bucket
from gateway.registration.forward import parse_answer, publish_client_uri
from gateway.registration.register import reserve_registration_quota, upstream_authorization
from gateway.registry.entry import Source
from gateway.registry.record import note_management, record_client
from gateway.registry.records import changes
from gateway.state import Gateway
from gateway.storage import StorageError
from gateway.upstream.client import read_guarded
from gateway.uri.parse import URIRefusal, parse_redirect_uri

#: How the upstream knows a bridged ``private_key_jwt`` client.
UPSTREAM_CONFIDENTIAL = "client_secret_basic"
#: Document fields about the client's own keys, which the upstream never needs.
KEY_FIELDS = ("jwks", "jwks_uri", "token_endpoint_auth_signing_alg")


@dataclass(frozen=True, slots=True)
class Mapping:
    """A document URL's bridged upstream client: its id, the digest of the document it was
    made from, the document's auth method, and (``private_key_jwt``) its secret, sealed."""

    client_id: str
    document_digest: str
    registered_at: float
    auth_method: str = "none"
    sealed_secret: str | None = None

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "client_id": self.client_id,
                "document_digest": self.document_digest,
                "registered_at": self.registered_at,
                "auth_method": self.auth_method,
                "sealed_secret": self.sealed_secret,
            }
        ).encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> Mapping | None:
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            sealed = data.get("sealed_secret")
            return cls(
                str(data["client_id"]),
                str(data["document_digest"]),
                float(data["registered_at"]),
                str(data.get("auth_method") or "none"),
                sealed if isinstance(sealed, str) else None,
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


def bridged_metadata(judged: dict[str, Any]) -> dict[str, Any]:
    """What the bridged client is registered with (see the module's docstring)."""
    metadata = dict(judged)
    uris = metadata.get("redirect_uris") or []
    if uris and all(_is_loopback(u) for u in uris) and "application_type" not in metadata:
        metadata["application_type"] = "native"
    if metadata.get("token_endpoint_auth_method") == "private_key_jwt":
        metadata["token_endpoint_auth_method"] = UPSTREAM_CONFIDENTIAL
        for name in KEY_FIELDS:
            metadata.pop(name, None)
    return metadata


@dataclass(frozen=True, slots=True)
class Judged:
    """A document judged for one request: everything bridging it needs.  ``policy`` is
    the one that judged it (a reload meanwhile changes nothing here)."""

    request: web.Request
    gateway: Gateway
    target: Target
    policy: Policy
    url: str
    decision: Decision
    #: :func:`gateway.cimd.bridge.document_digest` of the judged document.
    digest: str

    @property
    def auth_method(self) -> str:
        """The document's ``token_endpoint_auth_method`` (``none`` when it names none)."""
        return str(self.decision.metadata.get("token_endpoint_auth_method") or "none")


async def register(judged: Judged, previous: Mapping | None) -> Mapping:
    """One guarded registration upstream for the document, audited as a registration."""
    gateway, target, policy, decision = (
        judged.gateway,
        judged.target,
        judged.policy,
        judged.decision,
    )
    record, metadata = _record(judged, REGISTRATION_EVENT, "POST", _path(gateway, target))
    method = judged.auth_method
    if previous is not None:
        record.extra["replaces"] = previous.client_id
    started = time.perf_counter()
    vendor_key = vendor_bucket(decision.vendor, record.client_name)
    facts = RateFacts(
        client_ip=record.client_ip,
        software_id=record.software_id,
        vendor=decision.vendor,
        client_name=record.client_name,
        tenant=target.tenant,
    )
    reservation = hold = None
    created = False
    try:
        # The same controls as a registration: a flood of document URLs (a wildcard DNS
        # name is enough) must not create unbounded upstream clients.
        reservation, record.storage_error = await gateway.limiter.acquire(
            policy, facts, scope=gateway.policies.scope(target.tenant), registering=True
        )
        hold = await reserve_registration_quota(gateway, policy, target.tenant, vendor_key, record)
        answer, status = await _send(gateway, record, "POST", record.path, metadata, None)
        if status not in (200, 201) or record.client_id is None:
            raise rules.CIMD_BRIDGE_FAILED.refuse(
                f"the authorization server answered {status} to the bridged registration"
            )
        created = True
        record.status = status
        await gateway.clients.put(target.tenant, record.client_id, answer)
        await record_client(
            gateway,
            policy,
            target.tenant,
            answer,
            record,
            vendor_key=vendor_key,
            managed=decision.vendor is not None,
            token_name=None,
            source=Source.CIMD,
        )
        # After recording: a client the upstream made without a usable secret is still
        # counted against quotas and known to cleanup, which deletes it.
        sealed = _sealed_secret(gateway, answer, method)
        return Mapping(record.client_id, judged.digest, time.time(), method, sealed)
    except OAuthError as error:
        record.note_error(error)
        raise
    finally:
        if not created:
            with contextlib.suppress(StorageError):
                if reservation is not None:
                    await reservation.release()
                if hold is not None:
                    await hold.release()
        record.latency_ms = round((time.perf_counter() - started) * 1000, 3)
        gateway.audit.write(record)


async def update(judged: Judged, previous: Mapping) -> Mapping | None:
    """The previous client updated to the changed document (RFC 7592 §2.2), or ``None``
    when it cannot be (the caller registers a new one).  Audited when attempted."""
    gateway, target = judged.gateway, judged.target
    method = judged.auth_method
    if method != previous.auth_method:
        return None  # public <-> confidential: a different kind of client
    try:
        entry = await gateway.registry.get(target.tenant, previous.client_id)
    except StorageError:
        return None
    token = gateway.sealer.unseal(entry.sealed_token) if entry is not None else None
    if entry is None or token is None or entry.management_path is None:
        return None
    secret = gateway.sealer.unseal(previous.sealed_secret)
    if previous.sealed_secret is not None and secret is None:
        return None
    record, metadata = _record(judged, MANAGEMENT_EVENTS["PUT"], "PUT", entry.management_path)
    record.client_id = previous.client_id
    started = time.perf_counter()
    try:
        before = await gateway.clients.get(target.tenant, previous.client_id)
        record.extra["changes"] = changes(before, metadata)
    except StorageError:
        pass
    body = {**metadata, "client_id": previous.client_id}
    if secret is not None:
        body["client_secret"] = secret  # RFC 7592 §2.2: it must then match the current one
    try:
        answer, status = await _send(gateway, record, "PUT", entry.management_path, body, token)
        record.client_id = previous.client_id
        record.status = status
        if status != 200:
            record.extra["fallback"] = "register"
            return None
        sealed = _sealed_secret(gateway, answer, method) or previous.sealed_secret
        await gateway.clients.put(target.tenant, previous.client_id, answer)
        await note_management(gateway, target.tenant, previous.client_id, answer)
        return Mapping(previous.client_id, judged.digest, previous.registered_at, method, sealed)
    except OAuthError as error:
        record.note_error(error)
        record.extra["fallback"] = "register"
        return None
    finally:
        record.latency_ms = round((time.perf_counter() - started) * 1000, 3)
        gateway.audit.write(record)


def _sealed_secret(gateway: Gateway, answer: dict[str, Any], method: str) -> str | None:
    """The upstream's secret for a confidential bridged client, sealed; ``None`` for a
    public one.  Without a secret (or a key to seal it) the client cannot be used."""
    if method == "none":
        return None
    secret = answer.get("client_secret")
    sealed = gateway.sealer.seal(secret) if isinstance(secret, str) and secret else None
    if sealed is None:
        raise rules.CIMD_BRIDGE_FAILED.refuse(
            "the authorization server issued no client_secret for the bridged confidential client"
        )
    return sealed


def _record(
    judged: Judged, event: str, method: str, path: str
) -> tuple[AuditRecord, dict[str, Any]]:
    """The audit record of one upstream call for the document, filled with what was
    judged, and the metadata the upstream client gets (:func:`bridged_metadata`)."""
    caller = judged.gateway.identify(judged.request)
    record = AuditRecord(
        event=event,
        request_id=caller.request_id,
        client_ip=caller.client_ip,
        user_agent=judged.request.headers.get("User-Agent"),
        method=method,
        path=path,
        tenant=judged.target.tenant,
    )
    record.note_policy(judged.policy)
    metadata = bridged_metadata(judged.decision.metadata)
    record.note_request(metadata)
    record.note_decision(judged.decision)
    record.extra.update(source="cimd", client_id_url=judged.url)
    return record, metadata


async def _send(
    gateway: Gateway,
    record: AuditRecord,
    method: str,
    path: str,
    metadata: dict[str, Any],
    token: str | None,
) -> tuple[dict[str, Any], int]:
    """``metadata`` as JSON to ``path`` upstream: with the gateway's own upstream token
    (a registration) or the client's registration access token (an update)."""
    payload = serialize(metadata)
    headers = CIMultiDict(
        {
            "Content-Type": "application/json",
            "Content-Length": str(len(payload)),
            "Accept": "application/json",
            "Accept-Encoding": "identity",
        }
    )
    authorization = f"Bearer {token}" if token is not None else upstream_authorization(gateway)
    if authorization is not None:
        headers["Authorization"] = authorization
    public = gateway.settings.public_url
    headers["X-Forwarded-Host"] = public.raw_authority
    headers["X-Forwarded-Proto"] = public.scheme
    url = gateway.upstream.url_for(URL(path, encoded=True))
    async with gateway.upstream.send(method, url, headers, payload) as answer:
        body, _ = await read_guarded(answer, gateway.settings.limits.max_response_bytes)
        parsed = parse_answer(body)
        record.note_answer(answer.status, body, parsed)
        document = parsed if isinstance(parsed, dict) else {}
        publish_client_uri(document, gateway)
        return document, answer.status


def _is_loopback(uri: object) -> bool:
    parsed = parse_redirect_uri(uri) if isinstance(uri, str) else None
    return parsed is not None and not isinstance(parsed, URIRefusal) and parsed.is_loopback


def _path(gateway: Gateway, target: Target) -> str:
    path = gateway.router.profile.registration_path(target.tenant)
    if path is None:
        raise rules.CIMD_BRIDGE_FAILED.refuse("the upstream's registration endpoint is unknown")
    return path
