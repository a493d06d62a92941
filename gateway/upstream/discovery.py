"""Finding the upstream's registration endpoint at start-up (RFC 8414 §3, OIDC Discovery).

When ``upstream.registration_paths`` is not configured, the gateway reads
``registration_endpoint`` from the upstream's metadata.  Start-up waits for it (retrying
for ``upstream.discovery_timeout``) and fails if it cannot be found: serving traffic
without knowing which path registers clients would pass registrations through unguarded.
"""

from __future__ import annotations

import asyncio
import json
import time

from multidict import CIMultiDict
from yarl import URL

from gateway.audit.logging import log
from gateway.errors import OAuthError
from gateway.upstream.client import UpstreamClient


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


async def discover_registration_paths(client: UpstreamClient, timeout: float) -> tuple[str, ...]:
    """Ask the upstream until it answers or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    last_problem = "no answer yet"
    while True:
        for url in metadata_urls(client.base):
            try:
                async with client.send("GET", url, CIMultiDict()) as response:
                    if response.status != 200:
                        last_problem = f"{url} answered {response.status}"
                        continue
                    document = json.loads(await response.read())
            except (OAuthError, ValueError) as exc:
                last_problem = f"{url}: {exc}"
                continue
            path = registration_path(document, client.base)
            if path is None:
                raise DiscoveryError(
                    f"{url} names no registration_endpoint; the upstream does not offer "
                    "dynamic registration there. Set upstream.registration_paths."
                )
            log().info("registration_endpoint_discovered", path=path, source=str(url))
            return (path,)
        if time.monotonic() >= deadline:
            raise DiscoveryError(
                f"could not read the upstream's metadata within {timeout:g}s ({last_problem}); "
                "set upstream.registration_paths or check upstream.url"
            )
        await asyncio.sleep(0.5)
