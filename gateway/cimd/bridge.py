"""Client ID Metadata Document clients at the authorization and token endpoints.

A CIMD client never registers: its ``client_id`` is an https URL, and the server fetches
the document there.  Every request naming such a client is decided here, under the
tenant's policy, before anything reaches the upstream, and writes one ``cimd.decision``
audit event (the URL, the decision and rule, the vendor, whether the document came from
the cache or a fetch, and the fetch's status and time; never a secret).

``cimd.mode: bridge`` (the upstream has no CIMD): on a client's first authorization
request the document is fetched and judged, and an upstream client is registered from
the judged metadata through the same guarded path a registration takes (audited as a
``registration`` with ``source: cimd``), recorded in the registry (source ``cimd``) and
mapped from the URL in storage, so every replica, and every later connection, reuses it.
Requests then go upstream with ``client_id`` rewritten to that client's id, at the
authorization endpoint (query or form body) and at the token, PAR, revocation and
introspection endpoints (form body).  A document that changed since the mapping was made
is judged again: refused, the mapping is not used (every request judges the current
document, at both endpoints); allowed, the upstream client is updated (RFC 7592, see
:mod:`gateway.cimd.provision`).  Public clients (``none``) are bridged as public clients;
``private_key_jwt`` clients as confidential ones whose assertions the gateway verifies
itself (:mod:`gateway.cimd.client_auth`).

``cimd.mode: police`` (the upstream has CIMD): the document is fetched and judged the same
way, and the request is forwarded unchanged when allowed; the upstream fetches the
document again itself, so a document that changes between the two fetches is judged by
the gateway in one version and used in another (docs/cimd.md says so).

A refusal at the authorization endpoint is a 400 page (JSON when the client asks for it),
never a redirect: the redirect URIs were not validated (RFC 9700 §4.11.2).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any
from urllib.parse import parse_qs, quote, unquote_plus

from aiohttp import web
from yarl import URL

from gateway import rules
from gateway.audit.events import AuditRecord
from gateway.cimd.client_auth import (
    authenticate,
    check_keys,
    upstream_authorization,
    without_assertion,
)
from gateway.cimd.fetch import Fetched, FetchError
from gateway.cimd.judge import judge_document, url_refusal
from gateway.cimd.provision import Judged, Mapping, register, update
from gateway.http.exchange import Exchange
from gateway.http.pages import wants_json
from gateway.http.routes import Kind, Target
from gateway.policy.decision import RequestContext
from gateway.registration.register import report_or_refuse
from gateway.registry.entry import Status
from gateway.state import Gateway
from gateway.storage import StorageError
from gateway.upstream.passthrough import pass_through
from gateway.uri.parse import URIRefusal, parse_redirect_uri

__all__ = ["Mapping", "handle", "is_url_client_id", "mapping_key", "rewrite"]

EVENT = "cimd.decision"
#: How long a replica waits for another one registering the same document's client.
CLAIM_TTL = 30.0
AUTH_METHODS = frozenset({"none", "private_key_jwt"})


def is_url_client_id(value: str) -> bool:
    """Whether a ``client_id`` is a metadata document URL rather than an issued id."""
    head = value[:8].lower()
    return head.startswith("https://") or head.startswith("http://")


def mapping_key(tenant: str | None, url: str) -> str:
    return f"cimd:map:{tenant or ''}:{hashlib.sha256(url.encode('utf-8')).hexdigest()}"


def document_digest(document: dict[str, Any]) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


async def handle(
    request: web.Request,
    gateway: Gateway,
    target: Target,
    url: str,
    body: bytes | None,
) -> web.StreamResponse:
    """Decide on a request naming the CIMD client ``url``; forward it when allowed."""
    exchange = Exchange(request, gateway, EVENT, target.tenant)
    record = exchange.record
    record.extra.update(
        client_id_url=url,
        endpoint="authorization" if target.kind is Kind.AUTHORIZE else "token",
        mode=gateway.settings.cimd.mode,
    )

    async def work() -> web.StreamResponse:
        mapping = await _decide(request, gateway, target, url, body, record)
        record.decision = "allowed"
        if mapping is None:  # police mode: forwarded as it came
            return await pass_through(request, gateway, body=body)
        rel_url, new_body = rewrite(request, body, url, mapping.client_id)
        headers = None
        if target.kind is Kind.TOKEN and mapping.sealed_secret is not None:
            secret = gateway.sealer.unseal(mapping.sealed_secret)
            if secret is None:
                raise rules.CIMD_BRIDGE_FAILED.refuse(
                    "the bridged client's secret cannot be read with the configured keys"
                )
            new_body = without_assertion(new_body)
            headers = {"Authorization": upstream_authorization(mapping.client_id, secret)}
        return await pass_through(
            request, gateway, body=new_body, rel_url=rel_url, set_headers=headers
        )

    if target.kind is Kind.AUTHORIZE:
        return await exchange.run_page(work(), wants_json=wants_json(request))
    return await exchange.run(work())


async def _decide(
    request: web.Request,
    gateway: Gateway,
    target: Target,
    url: str,
    body: bytes | None,
    record: AuditRecord,
) -> Mapping | None:
    """The bridged client to use (bridge), ``None`` to forward unchanged (police);
    raises the refusal."""
    settings = gateway.settings.cimd
    policy = gateway.policies.for_tenant(target.tenant)
    record.note_policy(policy)
    if not settings.enabled:
        raise rules.CIMD_DISABLED.refuse(
            "this server does not take Client ID Metadata Documents as client ids"
        )
    refusal = url_refusal(url)
    if refusal is not None:
        raise refusal
    fetched = await _fetch(gateway, url, record)
    started = time.perf_counter()
    decision = judge_document(policy, url, fetched.document, RequestContext(record.client_ip))
    gateway.metrics.decided("cimd", time.perf_counter() - started)
    record.note_request(decision.metadata)
    context = RequestContext(record.client_ip)
    decision = report_or_refuse(  # report-only: a reported refusal acts by the enforced view
        record, policy, decision, lambda view: judge_document(view, url, fetched.document, context)
    )
    if target.kind is Kind.AUTHORIZE or _is_pushed_authorization(body):
        requested = _redirect_uris(request, body)
        if requested or not _by_reference(request):
            _check_redirect_uri(requested, fetched.document)
    if settings.mode == "police":
        return None
    method = decision.metadata.get("token_endpoint_auth_method", "none")
    if method not in AUTH_METHODS:
        raise rules.CIMD_UNSUPPORTED_AUTH.refuse(
            f"token_endpoint_auth_method {str(method)[:40]} is not bridged; use none or "
            "private_key_jwt"
        )
    if method != "none" and not gateway.sealer.enabled:
        raise rules.CIMD_UNSUPPORTED_AUTH.refuse(
            "this gateway keeps no secrets (registry.key_env is not set), so it cannot "
            "bridge private_key_jwt clients"
        )
    if method == "private_key_jwt" and target.kind is Kind.AUTHORIZE:
        check_keys(fetched.document)
    if target.kind is Kind.TOKEN:
        await authenticate(request, gateway, target, url, fetched.document, body, method)
    digest = document_digest(fetched.document)
    judged = Judged(request, gateway, target, policy, url, decision, digest)
    storage = gateway.storage
    key = mapping_key(target.tenant, url)
    try:
        mapping = Mapping.from_bytes(await storage.get(key))
    except StorageError:
        raise rules.storage_unavailable() from None
    if mapping is None or mapping.document_digest != digest:
        if target.kind is not Kind.AUTHORIZE and mapping is None:
            # A token request for a client never bridged: nothing to rewrite it to.
            raise rules.CIMD_NOT_BRIDGED.refuse(
                "no client is bridged for this metadata document yet; start at the "
                "authorization endpoint"
            )
        if mapping is None or target.kind is Kind.AUTHORIZE:
            mapping = await _bridge(judged, mapping)
    record.extra["bridged_client_id"] = mapping.client_id
    status = await _status(gateway, target.tenant, mapping.client_id)
    if status is Status.PENDING:
        raise rules.CLIENT_PENDING.refuse("the client awaits approval by an administrator")
    if status in (Status.REJECTED, Status.DELETED):
        if status is Status.REJECTED:
            raise rules.CLIENT_REJECTED.refuse("the client was rejected by an administrator")
        # Deleted by cleanup: bridge anew on the next authorization request.
        await _forget_mapping(gateway, key)
        if target.kind is Kind.AUTHORIZE:
            mapping = await _bridge(judged, None)
            record.extra["bridged_client_id"] = mapping.client_id
        else:
            raise rules.CLIENT_DELETED.refuse("the client is no longer registered")
    if target.kind is Kind.TOKEN and mapping.auth_method != method:
        # The document changed kind (public <-> confidential) since the client was
        # bridged: only a new authorization request bridges the new one.
        raise rules.CIMD_NOT_BRIDGED.refuse(
            "the metadata document changed its token_endpoint_auth_method; start again at "
            "the authorization endpoint"
        )
    return mapping


def _by_reference(request: web.Request) -> bool:
    """Whether an authorization request carries its parameters elsewhere: a pushed
    request's ``request_uri`` (RFC 9126 §4, whose ``redirect_uri`` the gateway judged at
    the PAR endpoint) or a request object (RFC 9101), which the upstream checks against
    the bridged client's redirect URIs, the document's."""
    query = request.rel_url.query
    return "request_uri" in query or "request" in query


def _is_pushed_authorization(body: bytes | None) -> bool:
    """Whether a token-kind request is a pushed authorization request (RFC 9126 §2.1): it
    carries the authorization request's ``response_type``."""
    if not body:
        return False
    try:
        return "response_type" in parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return False


async def _fetch(gateway: Gateway, url: str, record: AuditRecord) -> Fetched:
    fetcher = gateway.cimd_fetcher
    assert fetcher is not None
    try:
        fetched = await fetcher.fetch(url)
    except FetchError as exc:
        record.extra.update(fetch_status=exc.status, fetch_ms=exc.elapsed_ms, cache="miss")
        kind = exc.rule.rsplit(".", 1)[-1]
        raise rules.CIMD_FETCH.refuse_as(f"cimd.fetch.{kind}", exc.description) from None
    record.extra.update(
        cache="hit" if fetched.cache_hit else "fetch",
        fetch_status=fetched.status,
        fetch_ms=round(fetched.elapsed_ms, 3),
    )
    return fetched


def _redirect_uris(request: web.Request, body: bytes | None) -> list[str]:
    """Every ``redirect_uri`` of an authorization request: its query and, posted as a
    form (OIDC Core §3.1.2.1), its body."""
    found = list(request.rel_url.query.getall("redirect_uri", []))
    if body:
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            form = {}
        found += form.get("redirect_uri", [])
    return found


def _check_redirect_uri(requested: list[str], document: dict[str, Any]) -> None:
    """The requested ``redirect_uri`` must be one of the document's: exactly, but for the
    port of a loopback URI (RFC 8252 §7.3: native clients pick one at run time)."""
    allowed = document.get("redirect_uris") or []
    if not requested:
        if len(allowed) == 1:
            return
        raise rules.CIMD_REDIRECT_URI.refuse("redirect_uri is required with several registered")
    if len(requested) > 1:
        raise rules.CIMD_REDIRECT_URI.refuse("more than one redirect_uri")
    if not any(_same_redirect(requested[0], a) for a in allowed if isinstance(a, str)):
        raise rules.CIMD_REDIRECT_URI.refuse(
            "the redirect_uri is not one of the metadata document's"
        )


def _same_redirect(requested: str, registered: str) -> bool:
    if requested == registered:
        return True
    got, want = parse_redirect_uri(requested), parse_redirect_uri(registered)
    if isinstance(got, URIRefusal) or isinstance(want, URIRefusal):
        return False
    if not (got.is_loopback and want.is_loopback):
        return False
    return (got.scheme, got.host, got.path, got.query) == (
        want.scheme,
        want.host,
        want.path,
        want.query,
    )


async def _status(gateway: Gateway, tenant: str | None, client_id: str) -> Status | None:
    try:
        return await gateway.gate.status(tenant, client_id)
    except StorageError:
        raise rules.storage_unavailable() from None


async def _forget_mapping(gateway: Gateway, key: str) -> None:
    try:
        await gateway.storage.delete(key)
    except StorageError:
        raise rules.storage_unavailable() from None


async def _bridge(judged: Judged, previous: Mapping | None) -> Mapping:
    """Register (or, the document having changed, update) the upstream client for the
    document, once across replicas: a claim in storage; the others wait for its mapping."""
    gateway, digest = judged.gateway, judged.digest
    storage = gateway.storage
    key = mapping_key(judged.target.tenant, judged.url)
    claim = f"{key}:claim"
    try:
        if not await storage.set_new(claim, b"1", CLAIM_TTL):
            return await _wait_for(gateway, key, digest)
        try:
            current = Mapping.from_bytes(await storage.get(key))
            if current is not None and current.document_digest == digest:
                return current
            mapping = None
            if previous is not None:
                mapping = await update(judged, previous)
            if mapping is None:
                mapping = await register(judged, previous)
            await storage.set(key, mapping.to_bytes())
            return mapping
        finally:
            await storage.delete(claim)
    except StorageError:
        raise rules.storage_unavailable() from None


async def _wait_for(gateway: Gateway, key: str, digest: str) -> Mapping:
    deadline = time.monotonic() + gateway.settings.upstream.timeout + 1.0
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        mapping = Mapping.from_bytes(await gateway.storage.get(key))
        if mapping is not None and mapping.document_digest == digest:
            return mapping
    raise rules.CIMD_BRIDGE_FAILED.refuse("another request is bridging this client; retry")


def rewrite(
    request: web.Request, body: bytes | None, url: str, client_id: str
) -> tuple[URL, bytes | None]:
    """The request target and body with every ``client_id`` parameter that is ``url``
    replaced by ``client_id``; every other byte as it came."""
    rel = request.rel_url
    query = _replace_parameter(rel.raw_query_string, url, client_id)
    if query is not None:
        rel = URL.build(path=rel.raw_path, query_string=query, encoded=True)
    if body:
        try:
            text = body.decode("utf-8")  # as the client ids were read (registry.use)
        except UnicodeDecodeError:
            return rel, body
        replaced = _replace_parameter(text, url, client_id)
        if replaced is not None:
            body = replaced.encode("utf-8")
    return rel, body


def _replace_parameter(encoded: str, url: str, client_id: str) -> str | None:
    """``encoded`` (``application/x-www-form-urlencoded``) with each ``client_id=<url>``
    replaced; ``None`` when there is none."""
    parts = encoded.split("&")
    changed = False
    for index, part in enumerate(parts):
        key, _, value = part.partition("=")
        if unquote_plus(key) == "client_id" and unquote_plus(value) == url:
            parts[index] = "client_id=" + quote(client_id, safe="")
            changed = True
    return "&".join(parts) if changed else None
