"""Deployment settings: the config file turned into one immutable, typed object.

Validation happens once, at load, and collects every problem (with key path and
``file:line``) before failing; nothing downstream re-checks a setting.  Policy is loaded
separately (:mod:`gateway.policy.loader`) because security teams own it, not operators.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yarl import URL

from gateway.config.reader import (
    Reader,
    as_bool,
    as_choice,
    as_duration,
    as_http_url,
    as_int,
    as_nonempty_str,
    as_size,
)
from gateway.config.yamlsource import Document, KeyPath, Problem

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

STORAGE_SCHEMES = ("memory", "redis", "rediss", "unix")


DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_CONNECT_TIMEOUT = 2.0
DEFAULT_TIMEOUT = 15.0
DEFAULT_DISCOVERY_TIMEOUT = 30.0
DEFAULT_MAX_BODY_BYTES = 65536
DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024
DEFAULT_BODY_TIMEOUT = 10.0
DEFAULT_MAX_CONNECTIONS = 100
DEFAULT_GUARDED_CONNECTIONS = 20


@dataclass(frozen=True, slots=True)
class Listen:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT


@dataclass(frozen=True, slots=True)
class Upstream:
    url: URL
    #: Paths of the upstream's registration endpoint; ``None`` means "discover at start-up".
    registration_paths: tuple[str, ...] | None = None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    timeout: float = DEFAULT_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    #: A pool of its own for guarded requests (registration, management, discovery), so
    #: pass-through traffic cannot starve them.
    guarded_connections: int = DEFAULT_GUARDED_CONNECTIONS
    #: Send the client's ``Host`` upstream instead of the upstream's own.
    preserve_host: bool = False
    #: How long start-up keeps retrying discovery of the registration endpoint.
    discovery_timeout: float = DEFAULT_DISCOVERY_TIMEOUT


@dataclass(frozen=True, slots=True)
class Limits:
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: Upper bound on a registration *response* read to find the ``client_id``.
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    #: How long a client may take to send a registration body (slow or broken senders).
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    #: How long a pass-through request body may stall (the whole body when it is small,
    #: each chunk when it streams) before the gateway gives up on it.
    passthrough_body_timeout: float = DEFAULT_BODY_TIMEOUT


@dataclass(frozen=True, slots=True)
class Audit:
    sink: str = "stdout"


@dataclass(frozen=True, slots=True)
class Settings:
    listen: Listen
    public_url: URL
    upstream: Upstream
    policy_file: Path
    storage: str = "memory://"
    trusted_proxies: tuple[IPNetwork, ...] = ()
    limits: Limits = Limits()
    audit: Audit = Audit()
    log_level: str = "info"


_TOP_KEYS = {
    "listen",
    "public_url",
    "upstream",
    "policy_file",
    "storage",
    "trusted_proxies",
    "limits",
    "audit",
    "log_level",
}
_UPSTREAM_KEYS = {
    "url",
    "registration_paths",
    "connect_timeout",
    "timeout",
    "max_connections",
    "guarded_connections",
    "preserve_host",
    "discovery_timeout",
}


def _as_path(value: Any) -> str:
    text = as_nonempty_str(value)
    if not text.startswith("/"):
        raise ValueError(f"must be an absolute path starting with '/', not {text!r}")
    if "?" in text or "#" in text:
        raise ValueError("must be a path, without query or fragment")
    return text


def _as_storage(value: Any) -> str:
    text = as_nonempty_str(value)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme not in STORAGE_SCHEMES:
        raise ValueError("must be memory:// or a redis://, rediss:// or unix:// URL")
    return text


def _as_network(value: Any) -> IPNetwork:
    try:
        return ipaddress.ip_network(as_nonempty_str(value), strict=False)
    except ValueError as exc:
        raise ValueError(f"is not an IP address or CIDR: {exc}") from None


def read_settings(document: Document, base_dir: Path, problems: list[Problem]) -> Settings:
    """Build :class:`Settings` from a parsed config document; problems are collected."""
    r = Reader(document, problems)
    top = r.section(document.data, (), _TOP_KEYS)
    if document.data is None:
        r.problem((), "the config file is empty")

    lp: KeyPath = ("listen",)
    listen_s = r.section(top.get("listen"), lp, {"host", "port"})
    listen = Listen(
        host=r.get(listen_s, lp, "host", as_nonempty_str, DEFAULT_HOST),
        port=r.get(listen_s, lp, "port", as_int(0, 65535), DEFAULT_PORT),
    )
    public_url = r.get(top, (), "public_url", as_http_url, None)
    if public_url is None:
        public_url = URL.build(scheme="http", host=listen.host, port=listen.port)

    up: KeyPath = ("upstream",)
    if "upstream" not in top:
        r.problem(up, "is required")
    up_s = r.section(top.get("upstream"), up, _UPSTREAM_KEYS)
    upstream_url = r.require(up_s, up, "url", as_http_url, URL("http://127.0.0.1"))
    paths: tuple[str, ...] | None = None
    if "registration_paths" in up_s:
        paths = tuple(r.items(up_s["registration_paths"], (*up, "registration_paths"), _as_path))
        if not paths:
            r.problem((*up, "registration_paths"), "must list at least one path, or be omitted")
    upstream = Upstream(
        url=upstream_url,
        registration_paths=paths,
        connect_timeout=r.get(up_s, up, "connect_timeout", as_duration, DEFAULT_CONNECT_TIMEOUT),
        timeout=r.get(up_s, up, "timeout", as_duration, DEFAULT_TIMEOUT),
        max_connections=r.get(
            up_s, up, "max_connections", as_int(1, 10000), DEFAULT_MAX_CONNECTIONS
        ),
        guarded_connections=r.get(
            up_s, up, "guarded_connections", as_int(1, 10000), DEFAULT_GUARDED_CONNECTIONS
        ),
        preserve_host=r.get(up_s, up, "preserve_host", as_bool, False),
        discovery_timeout=r.get(
            up_s, up, "discovery_timeout", as_duration, DEFAULT_DISCOVERY_TIMEOUT
        ),
    )

    policy_name = r.require(top, (), "policy_file", as_nonempty_str, "")
    policy_file = (base_dir / policy_name) if policy_name else base_dir

    limits_s = r.section(
        top.get("limits"),
        ("limits",),
        {"max_body_bytes", "max_response_bytes", "body_timeout", "passthrough_body_timeout"},
    )
    limits = Limits(
        max_body_bytes=r.get(
            limits_s, ("limits",), "max_body_bytes", as_size, DEFAULT_MAX_BODY_BYTES
        ),
        max_response_bytes=r.get(
            limits_s, ("limits",), "max_response_bytes", as_size, DEFAULT_MAX_RESPONSE_BYTES
        ),
        body_timeout=r.get(
            limits_s, ("limits",), "body_timeout", as_duration, DEFAULT_BODY_TIMEOUT
        ),
        passthrough_body_timeout=r.get(
            limits_s, ("limits",), "passthrough_body_timeout", as_duration, DEFAULT_BODY_TIMEOUT
        ),
    )
    audit_s = r.section(top.get("audit"), ("audit",), {"sink"})
    sink = r.get(audit_s, ("audit",), "sink", as_nonempty_str, "stdout")
    if sink not in ("stdout", "stderr"):
        sink = str(base_dir / sink)

    return Settings(
        listen=listen,
        public_url=public_url,
        upstream=upstream,
        policy_file=policy_file,
        storage=r.get(top, (), "storage", _as_storage, "memory://"),
        trusted_proxies=tuple(
            r.items(top.get("trusted_proxies"), ("trusted_proxies",), _as_network)
        ),
        limits=limits,
        audit=Audit(sink=sink),
        log_level=r.get(
            top, (), "log_level", as_choice("debug", "info", "warning", "error"), "info"
        ),
    )
