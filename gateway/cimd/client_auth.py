"""How a bridged metadata-document client authenticates at the token endpoint (and PAR,
revocation, introspection, device authorization), and how the gateway then authenticates
upstream for it.

A ``none`` client sends no credentials (RFC 6749 §2.1: public); one that sends some anyway
is refused, not passed on with a URL the upstream does not know.  A ``private_key_jwt``
client sends a client assertion (RFC 7521 §4.2, RFC 7523 §2.2), which the gateway verifies
against the document's keys (:mod:`gateway.cimd.assertion`; the keys inline as ``jwks`` or
fetched from ``jwks_uri`` by the same SSRF-safe fetcher as documents, fetched again once
when the assertion names a key the cached set lacks, a rotation), and whose ``jti`` it
remembers until the assertion expires, so that a replay is refused (RFC 7523 §3 item 7;
in storage, so every replica knows).  The request then goes upstream without the
assertion, authenticated with HTTP Basic as the bridged client (RFC 6749 §2.3.1) by the
secret the upstream issued it, which only the gateway holds, sealed
(:mod:`gateway.registry.sealing`).
"""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any
from urllib.parse import parse_qs, quote, unquote_to_bytes

from aiohttp import web
from joserfc.jwk import KeySet

from gateway import rules
from gateway.cimd.assertion import (
    ASSERTION_TYPE,
    AssertionRefused,
    Verified,
    load_keys,
    verify,
)
from gateway.cimd.fetch import FetchError
from gateway.http.routes import Target
from gateway.state import Gateway
from gateway.storage import StorageError

#: The largest key set fetched from a ``jwks_uri``.
MAX_JWKS_BYTES = 32768
#: Parameters that authenticate the client, removed before the request goes upstream.
ASSERTION_PARAMETERS = ("client_assertion", "client_assertion_type")
_ASSERTION_NAMES = frozenset(name.encode("ascii") for name in ASSERTION_PARAMETERS)


async def authenticate(
    request: web.Request,
    gateway: Gateway,
    target: Target,
    url: str,
    document: dict[str, Any],
    body: bytes | None,
    method: str,
) -> None:
    """Refuse the request (``cimd.client_auth``) unless it authenticates as the document
    says its client does."""
    form = _form(body)
    if request.headers.get("Authorization") is not None:
        raise rules.CIMD_CLIENT_AUTH.refuse(
            "a metadata document client authenticates with "
            + ("no credentials" if method == "none" else "a client_assertion")
            + ", not an Authorization header (RFC 6749 section 2.3)"
        )
    if method == "none":
        if any(name in form for name in ASSERTION_PARAMETERS) or "client_secret" in form:
            raise rules.CIMD_CLIENT_AUTH.refuse(
                "the client's token_endpoint_auth_method is none: it sends no credentials"
            )
        return
    types, assertions = form.get("client_assertion_type", []), form.get("client_assertion", [])
    if "client_secret" in form:
        raise rules.CIMD_CLIENT_AUTH.refuse("a private_key_jwt client sends no client_secret")
    if len(types) != 1 or len(assertions) != 1:
        raise rules.CIMD_CLIENT_AUTH.refuse(
            "a private_key_jwt client sends one client_assertion and one "
            "client_assertion_type (RFC 7521 section 4.2)"
        )
    if types[0] != ASSERTION_TYPE:
        raise rules.CIMD_CLIENT_AUTH.refuse(f"client_assertion_type must be {ASSERTION_TYPE}")
    now = time.time()
    algorithm = document.get("token_endpoint_auth_signing_alg")
    audiences = audiences_of(gateway, target)

    def check(keys: KeySet) -> Verified:
        return verify(
            assertions[0],
            keys,
            client_id=url,
            audiences=audiences,
            now=now,
            algorithm=algorithm if isinstance(algorithm, str) else None,
        )

    keys, refetchable = await _keys(gateway, document, refresh=False)
    try:
        try:
            verified = check(keys)
        except AssertionRefused as refused:
            if not (refused.unknown_key and refetchable):
                raise
            verified = check((await _keys(gateway, document, refresh=True))[0])
    except AssertionRefused as refused:
        raise rules.CIMD_CLIENT_AUTH.refuse(refused.description) from None
    key = "cimd:jti:" + _digest(url) + ":" + _digest(verified.jti)
    try:
        fresh = await gateway.storage.set_new(key, b"1", max(1.0, verified.expires_at - now))
    except StorageError:
        raise rules.storage_unavailable() from None
    if not fresh:
        raise rules.CIMD_CLIENT_AUTH.refuse(
            "the assertion's jti was used before; an assertion is good for one request "
            "(RFC 7523 section 3)"
        )


def audiences_of(gateway: Gateway, target: Target) -> frozenset[str]:
    """The values an assertion's ``aud`` may have here: the tenant's issuer and endpoint
    URLs as the gateway publishes them."""
    base = str(gateway.settings.public_url).rstrip("/")
    found: set[str] = set()
    for path in gateway.router.profile.audience_paths(target.tenant):
        found.add(base + path)
        if not path:
            found.add(base + "/")
    return frozenset(found)


def upstream_authorization(client_id: str, secret: str) -> str:
    """HTTP Basic for the bridged client: both parts form-encoded first (RFC 6749
    §2.3.1)."""
    pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


def without_assertion(body: bytes | None) -> bytes | None:
    """``body`` (``application/x-www-form-urlencoded``) without the client assertion;
    every other byte as it came.  Works on the bytes, whatever their encoding, so that no
    body the assertion was read from (:func:`_form`) keeps it."""
    if not body:
        return body
    kept = []
    for part in body.split(b"&"):
        name = unquote_to_bytes(part.partition(b"=")[0].replace(b"+", b" "))
        if name not in _ASSERTION_NAMES:
            kept.append(part)
    return b"&".join(kept)


def check_keys(document: dict[str, Any]) -> None:
    """What can be checked of a ``private_key_jwt`` document's keys without fetching:
    exactly one of ``jwks`` and ``jwks_uri`` (RFC 7591 §2), an inline set that is usable.
    Checked when the client is bridged, so that a document that can never authenticate
    creates nothing upstream."""
    inline, uri = document.get("jwks"), document.get("jwks_uri")
    if (inline is None) == (uri is None):
        raise rules.CIMD_JWKS.refuse(
            "a private_key_jwt document has exactly one of jwks and jwks_uri (RFC 7591 section 2)"
        )
    if uri is not None and not isinstance(uri, str):
        raise rules.CIMD_JWKS.refuse("the document's jwks_uri is not a string")
    if inline is not None:
        try:
            load_keys(inline)
        except AssertionRefused as refused:
            raise rules.CIMD_JWKS.refuse(refused.description) from None


async def _keys(
    gateway: Gateway, document: dict[str, Any], *, refresh: bool
) -> tuple[KeySet, bool]:
    """The document's key set, and whether it came from a cached copy of its ``jwks_uri``
    (so that fetching it again may find a new key)."""
    check_keys(document)
    inline, uri = document.get("jwks"), document.get("jwks_uri")
    try:
        if inline is not None:
            return load_keys(inline), False
        assert isinstance(uri, str)
        fetcher = gateway.cimd_fetcher
        assert fetcher is not None
        if refresh:
            fetcher.invalidate(uri)
        try:
            fetched = await fetcher.fetch(uri, max_bytes=MAX_JWKS_BYTES)
        except FetchError as exc:
            raise rules.CIMD_JWKS.refuse(
                "the client's jwks_uri could not be fetched: " + exc.description
            ) from None
        return load_keys(fetched.document), fetched.cache_hit
    except AssertionRefused as refused:
        raise rules.CIMD_JWKS.refuse(refused.description) from None


def _form(body: bytes | None) -> dict[str, list[str]]:
    if not body:
        return {}
    try:
        return parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return {}


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()
