"""The upstream's authorization server metadata (RFC 8414, OpenID Connect Discovery 1.0).

At start-up, when ``upstream.registration_paths`` is not configured, the gateway reads
``registration_endpoint`` from the upstream's metadata; start-up waits for it (retrying
for ``upstream.discovery_timeout``) and fails if it cannot be found: serving traffic
without knowing which path registers clients would pass registrations through unguarded.

Afterwards the metadata documents clients fetch are served through the gateway with
``registration_endpoint`` rewritten (:func:`publish_metadata`), parsed documents being
cached for ``upstream.discovery_cache`` (:class:`MetadataCache`).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from multidict import CIMultiDict
from yarl import URL

from gateway.audit.logging import log
from gateway.errors import OAuthError
from gateway.http.routes import Kind
from gateway.upstream.client import UpstreamClient, read_guarded

#: Largest metadata document read at start-up (real ones are a few KiB).
MAX_DOCUMENT_BYTES = 1024 * 1024


class DiscoveryError(RuntimeError):
    """The registration endpoint could not be learned from the upstream."""


def metadata_urls(upstream: URL) -> list[URL]:
    """Where the upstream's metadata may be: RFC 8414 path insertion, then OIDC's suffix."""
    prefix = upstream.raw_path.rstrip("/")
    origin = str(upstream.origin())
    return [
        URL(f"{origin}/.well-known/oauth-authorization-server{prefix}", encoded=True),
        URL(f"{origin}{prefix}/.well-known/openid-configuration", encoded=True),
    ]


def registration_path(document: object, upstream: URL) -> str | None:
    """The gateway-side path of ``registration_endpoint`` in a metadata document."""
    if not isinstance(document, dict):
        return None
    endpoint = document.get("registration_endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        return None
    path = URL(endpoint).raw_path or "/"
    prefix = upstream.raw_path.rstrip("/")
    if prefix and path.startswith(prefix + "/"):
        path = path[len(prefix) :]
    return path


#: Metadata fields naming endpoints where a client is used, and how each is guarded.
USE_ENDPOINTS = {
    "authorization_endpoint": Kind.AUTHORIZE,
    "token_endpoint": Kind.TOKEN,
    "pushed_authorization_request_endpoint": Kind.TOKEN,
    "device_authorization_endpoint": Kind.TOKEN,
    "revocation_endpoint": Kind.TOKEN,
    "introspection_endpoint": Kind.TOKEN,
}


@dataclass(frozen=True, slots=True)
class Discovered:
    registration_paths: tuple[str, ...]
    #: Gateway-side path -> kind, for the endpoints on the upstream's own origin.
    use_paths: dict[str, Kind]


def use_paths(document: dict[str, Any], upstream: URL) -> dict[str, Kind]:
    """The gateway-side paths of the endpoints where clients are used (RFC 8414 §2)."""
    out: dict[str, Kind] = {}
    for name, kind in USE_ENDPOINTS.items():
        endpoint = document.get(name)
        if not isinstance(endpoint, str) or not endpoint:
            continue
        # The path only: the document names the public host (the issuer is the gateway's).
        try:
            path = registration_path({"registration_endpoint": endpoint}, upstream)
        except ValueError:
            continue
        if path is not None:
            out[path] = kind
    return out


async def discover_registration_paths(client: UpstreamClient, timeout: float) -> tuple[str, ...]:
    """Ask the upstream until it answers or ``timeout`` seconds pass."""
    return (await discover(client, timeout)).registration_paths


async def discover(
    client: UpstreamClient, timeout: float, *, need_registration: bool = True
) -> Discovered:
    """Read the upstream's metadata, retrying until ``timeout`` seconds pass: its
    registration endpoint (required unless ``need_registration`` is false) and the
    endpoints where clients are used."""
    deadline = time.monotonic() + timeout
    last_problem = "no answer yet"
    while True:
        for url in metadata_urls(client.base):
            try:
                headers = CIMultiDict({"Accept-Encoding": "identity"})
                async with client.send("GET", url, headers) as response:
                    if response.status != 200:
                        last_problem = f"{url} answered {response.status}"
                        continue
                    body, _ = await read_guarded(response, MAX_DOCUMENT_BYTES)
                    document = json.loads(body)
            except (OAuthError, ValueError) as exc:
                last_problem = f"{url}: {exc}"
                continue
            path = registration_path(document, client.base)
            if path is None and need_registration:
                raise DiscoveryError(
                    f"{url} names no registration_endpoint; the upstream does not offer "
                    "dynamic registration there. Set upstream.registration_paths."
                )
            uses = use_paths(document, client.base) if isinstance(document, dict) else {}
            if path is not None:
                log().info("registration_endpoint_discovered", path=path, source=str(url))
            return Discovered((path,) if path is not None else (), uses)
        if time.monotonic() >= deadline:
            raise DiscoveryError(
                f"could not read the upstream's metadata within {timeout:g}s ({last_problem}); "
                "set upstream.registration_paths or check upstream.url"
            )
        await asyncio.sleep(0.5)


@dataclass(frozen=True, slots=True)
class _Cached:
    expires: float
    status: int
    headers: tuple[tuple[str, str], ...]
    document: dict[str, Any]


class MetadataCache:
    """Parsed upstream metadata documents, reused for ``upstream.discovery_cache`` seconds.

    Keyed by upstream path and query and by the forwarding headers the upstream builds its
    URLs from, so a trusted proxy's ``X-Forwarded-Host`` never gets another host's
    document; at most :data:`MAX_ENTRIES` entries."""

    MAX_ENTRIES = 256

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[tuple[str, ...], _Cached] = {}

    def get(self, key: tuple[str, ...]) -> _Cached | None:
        entry = self._entries.get(key)
        if entry is None or entry.expires <= time.monotonic():
            self._entries.pop(key, None)
            return None
        return entry

    def put(self, key: tuple[str, ...], entry: _Cached) -> None:
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.pop(next(iter(self._entries)))
        self._entries[key] = entry

    def entry(self, status: int, headers: CIMultiDict[str], document: dict[str, Any]) -> _Cached:
        """A cache entry; the answer's ``Date`` is not kept (each answer gets its own) and
        neither is ``X-Request-ID`` (each answer names its own request)."""
        kept = tuple(
            (name, value)
            for name, value in headers.items()
            if name.lower() not in ("date", "x-request-id")
        )
        return _Cached(time.monotonic() + self.ttl, status, kept, document)


def publish_metadata(
    document: dict[str, Any],
    registration_url: str | None,
    registration_open: bool,
    *,
    cimd: bool = False,
) -> dict[str, Any]:
    """The upstream's metadata as clients of the gateway must see it: everything untouched
    (the ``issuer`` must stay the gateway's URL, RFC 8414 §3.3) but ``registration_endpoint``,
    which names the gateway's guarded endpoint, or is removed when the policy disables
    registration, so that clients do not try (RFC 8414 §2: it is optional), and its mutual-TLS
    alias, which is removed."""
    published = dict(document)
    aliases = published.get("mtls_endpoint_aliases")
    if isinstance(aliases, dict) and "registration_endpoint" in aliases:
        # RFC 8705 §5: a client using mutual TLS prefers the alias, which names the
        # upstream's own endpoint, past the gateway.  Without it, such a client uses
        # ``registration_endpoint`` (the gateway's) like every other.
        published["mtls_endpoint_aliases"] = {
            k: v for k, v in aliases.items() if k != "registration_endpoint"
        }
    if not registration_open or registration_url is None:
        published.pop("registration_endpoint", None)
    else:
        published["registration_endpoint"] = registration_url
    return publish_cimd(published, cimd and registration_open)


def publish_cimd(published: dict[str, Any], enabled: bool) -> dict[str, Any]:
    """``client_id_metadata_document_supported`` is the gateway's to say: true when it takes
    metadata documents (with ``none`` among the token endpoint's auth methods, without
    which claude.ai uses DCR instead), removed otherwise, whatever the upstream says."""
    if not enabled:
        published.pop("client_id_metadata_document_supported", None)
        return published
    published["client_id_metadata_document_supported"] = True
    methods = published.get("token_endpoint_auth_methods_supported")
    if isinstance(methods, list) and "none" not in methods:
        published["token_endpoint_auth_methods_supported"] = [*methods, "none"]
    return published
