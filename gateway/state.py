"""The running gateway's state, shared by its handlers through one typed app key."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web
from multidict import CIMultiDict

from gateway.audit.sink import AuditLog
from gateway.cimd.fetch import DocumentFetcher
from gateway.config.settings import Settings
from gateway.http.cors import CorsPolicy
from gateway.http.forwarding import Caller, TrustedProxies, upstream_request_headers
from gateway.http.routes import Router
from gateway.metrics import Metrics
from gateway.policy.policies import Policies
from gateway.ratelimit.limiter import RateLimiter
from gateway.registry.gate import ClientGate
from gateway.registry.records import ClientRecords
from gateway.registry.sealing import Sealer
from gateway.registry.store import Registry
from gateway.reload.reloader import PolicyReloader
from gateway.storage import Storage
from gateway.upstream.client import UpstreamClient
from gateway.upstream.discovery import MetadataCache


@dataclass(slots=True)
class Gateway:
    """Everything a request handler needs.

    A request reads its policy from ``policies`` once, into a local, so a later reload
    never changes the rules halfway through a decision; ``reloader`` replaces ``policies``
    with one assignment (:mod:`gateway.reload`).  ``router`` is replaced once at start-up
    when the registration endpoint is discovered.
    """

    settings: Settings
    policies: Policies
    upstream: UpstreamClient
    audit: AuditLog
    storage: Storage
    trusted: TrustedProxies
    router: Router
    clients: ClientRecords
    metadata_cache: MetadataCache
    cors: CorsPolicy
    limiter: RateLimiter
    registry: Registry
    gate: ClientGate
    sealer: Sealer
    #: Reloads ``policies`` (SIGHUP, the admin API, the file watcher) and keeps its status.
    reloader: PolicyReloader
    #: Fetches Client ID Metadata Documents (``cimd.enabled``); ``None`` otherwise.
    cimd_fetcher: DocumentFetcher | None = None
    #: The application's Prometheus metrics (a registry of its own).
    metrics: Metrics = field(default_factory=Metrics)

    def identify(self, request: web.Request) -> Caller:
        """Who sent ``request`` (request ids and client IP; see :class:`Caller`)."""
        return self.trusted.identify(request.remote, request.headers)

    def upstream_headers(self, request: web.Request, caller: Caller) -> CIMultiDict[str]:
        """The headers sent upstream for ``request`` (see
        :func:`gateway.http.forwarding.upstream_request_headers`)."""
        return upstream_request_headers(
            request.headers,
            caller,
            public_url=self.settings.public_url,
            preserve_host=self.settings.upstream.preserve_host,
        )

    def guarded_headers(self, request: web.Request, caller: Caller) -> CIMultiDict[str]:
        """The headers of a guarded upstream request, whose answer the gateway reads and
        rewrites: as :meth:`upstream_headers`, asking for no content coding."""
        headers = self.upstream_headers(request, caller)
        headers["Accept-Encoding"] = "identity"
        return headers


GATEWAY = web.AppKey("gateway", Gateway)
