"""The running gateway's state, shared by its handlers through one typed app key."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from multidict import CIMultiDict

from gateway.audit import AuditLog
from gateway.forwarding import TrustedProxies, upstream_request_headers
from gateway.paths import PathMatcher
from gateway.policy.model import Policy
from gateway.proxy import UpstreamClient
from gateway.settings import Settings
from gateway.storage import Storage


@dataclass(slots=True)
class Gateway:
    """Everything a request handler needs.

    ``policy`` is read once per request into a local, so a later reload never changes the
    rules halfway through a decision.
    """

    settings: Settings
    policy: Policy
    upstream: UpstreamClient
    audit: AuditLog
    storage: Storage
    trusted: TrustedProxies
    registration_paths: PathMatcher

    def upstream_headers(self, request: web.Request, request_id: str) -> CIMultiDict[str]:
        """The headers sent upstream for ``request`` (see
        :func:`gateway.forwarding.upstream_request_headers`)."""
        peer = request.remote
        return upstream_request_headers(
            request.headers,
            peer=peer,
            trusted=self.trusted.trusts(peer),
            public_url=self.settings.public_url,
            request_id=request_id,
            preserve_host=self.settings.upstream.preserve_host,
        )


GATEWAY = web.AppKey("gateway", Gateway)
