"""The running gateway's state, shared by its handlers through one typed app key."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from gateway.audit import AuditLog
from gateway.forwarding import TrustedProxies
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


GATEWAY = web.AppKey("gateway", Gateway)
