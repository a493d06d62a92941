"""Deployment settings: the config file turned into one immutable, typed object.

Validation happens once, at load, and collects every problem (with key path and
``file:line``) before failing; nothing downstream re-checks a setting.  Policy is loaded
separately (:mod:`gateway.policy.loader`) because security teams own it, not operators.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
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
    as_str,
)
from gateway.config.yamlsource import Document, KeyPath, Problem
from gateway.registry.sealing import parse_keys

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

STORAGE_SCHEMES = (
    "memory",
    "redis",
    "rediss",
    "unix",
    "redis+sentinel",
    "rediss+sentinel",
    "redis+cluster",
    "rediss+cluster",
)


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
DEFAULT_DISCOVERY_CACHE = 60.0
DEFAULT_CORS_MAX_AGE = 600.0
DEFAULT_SHUTDOWN_TIMEOUT = 10.0
#: More worker processes than this is a typo, not a deployment (run more replicas).
MAX_WORKERS = 64
DEFAULT_RELOAD_INTERVAL = 2.0
#: The shortest watch interval: polling more often buys nothing but stat calls.
MIN_RELOAD_INTERVAL = 0.1
PROFILES = ("generic", "keycloak")
#: Keycloak's client registration providers (``/realms/{realm}/clients-registrations/{id}``).
KEYCLOAK_PROVIDERS = ("openid-connect", "default", "install", "saml2-entity-descriptor")


#: The shortest admin token accepted (``openssl rand -hex 32`` makes 64 characters).
MIN_ADMIN_TOKEN = 32
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class Secret:
    """A credential from the config: never shown by ``repr`` (logs, tracebacks, ``check``)."""

    value: str = field(repr=False)


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
    #: Which URL layout the upstream has: ``generic`` or ``keycloak`` (realms).
    profile: str = "generic"
    #: Keycloak before 17 serves everything under ``/auth``.
    path_prefix: str = ""
    #: How long a parsed upstream discovery document is reused.
    discovery_cache: float = DEFAULT_DISCOVERY_CACHE
    #: Presented upstream (``Authorization: Bearer``) on registrations, in place of
    #: whatever the caller sent: an authorization server that only allows authenticated
    #: registration can sit behind an open, policed gateway.
    initial_access_token: Secret | None = None


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
class Keycloak:
    #: Client registration providers a request may reach; the others answer 403.
    allow_providers: tuple[str, ...] = ("openid-connect",)


@dataclass(frozen=True, slots=True)
class Cors:
    """CORS for browser-based clients on the guarded paths (registration, management,
    discovery); none by default."""

    allow_origins: tuple[str, ...] = ()
    max_age: float = DEFAULT_CORS_MAX_AGE


@dataclass(frozen=True, slots=True)
class Admin:
    """The admin API (``/-/admin/...``): on only when an admin token is configured."""

    #: The environment variable the admin token was read from.
    token_env: str | None = None
    #: SHA-256 of the admin token; the token itself is not kept.
    token_digest: bytes | None = field(default=None, repr=False)
    #: A listener of its own for ``/-/admin/`` (then the public one answers 404 there).
    listen: Listen | None = None
    #: Serve readiness (with its checks) and the other operational endpoints only on the
    #: admin listener; the public listener then answers a minimal ``/-/healthz`` only.
    serve_health: bool = False


@dataclass(frozen=True, slots=True)
class RegistrySettings:
    """The client registry's deployment settings (its rules are policy)."""

    #: The environment variable holding the Fernet keys that seal registration access
    #: tokens at rest (comma-separated, newest first); ``None``: tokens are not kept.
    key_env: str | None = None
    keys: tuple[bytes, ...] = field(default=(), repr=False)
    #: How often the lifecycle job (expiry, cleanup, retries, re-sealing) runs.
    job_interval: float = 60.0
    #: The job says what it would do (audit ``decision: would_delete``) and does nothing.
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class CimdFetch:
    """How Client ID Metadata Documents are fetched (draft-ietf-oauth-client-id-metadata-
    document §6, SSRF): a deadline, a size cap counted on bytes read, an upper bound on
    what caching headers may say."""

    timeout: float = 5.0
    max_bytes: int = 5 * 1024
    max_cache_age: float = 24 * 3600.0
    #: Extra trust anchors (a private CA; the tests' CA).
    ca_file: Path | None = None
    #: Networks exempt from the special-use address rule (tests, private deployments).
    allow_private_addresses: tuple[IPNetwork, ...] = ()
    #: Host name -> address, used instead of DNS (tests, split-horizon DNS).
    resolve: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Cimd:
    """Client ID Metadata Documents: URL ``client_id``s at the authorization endpoint."""

    enabled: bool = False
    #: ``bridge``: the upstream has no CIMD; the gateway registers a client for each URL.
    #: ``police``: the upstream has CIMD; the gateway vets each document first.
    mode: str = "bridge"
    fetch: CimdFetch = CimdFetch()


@dataclass(frozen=True, slots=True)
class Server:
    """How the gateway's processes run (not what they do)."""

    #: Processes sharing the listening port (``SO_REUSEPORT``), supervised by a parent.
    workers: int = 1
    #: On SIGTERM/SIGINT, how long requests in flight may take to finish before they are
    #: cancelled (the listener is closed at once).
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT


@dataclass(frozen=True, slots=True)
class PolicyReload:
    """``policy_reload``: the policy files are read again on SIGHUP and on the admin API's
    ``POST /-/admin/policy/reload``; with ``watch``, also when one changes on disk (polled
    every ``interval``: modification time, size and inode)."""

    watch: bool = False
    interval: float = DEFAULT_RELOAD_INTERVAL


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """``/-/metrics`` (Prometheus text format): served on the main listener by default."""

    enabled: bool = True
    #: ``main`` (the public listener) or ``admin`` (``admin.listen``'s only).
    listener: str = "main"
    #: Scrapes must carry the admin token (``Authorization: Bearer``).
    require_admin_token: bool = False


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
    #: Tenant (Keycloak realm) -> its policy file; others use ``policy_file``.
    tenants: tuple[tuple[str, Path], ...] = ()
    keycloak: Keycloak = Keycloak()
    cors: Cors = Cors()
    admin: Admin = Admin()
    registry: RegistrySettings = RegistrySettings()
    cimd: Cimd = Cimd()
    server: Server = Server()
    policy_reload: PolicyReload = PolicyReload()
    metrics: MetricsSettings = MetricsSettings()


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
    "tenants",
    "keycloak",
    "cors",
    "admin",
    "registry",
    "cimd",
    "server",
    "policy_reload",
    "metrics",
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
    "profile",
    "path_prefix",
    "discovery_cache",
    "initial_access_token",
}


def _as_path(value: Any) -> str:
    text = as_nonempty_str(value)
    if not text.startswith("/"):
        raise ValueError(f"must be an absolute path starting with '/', not {text!r}")
    if "?" in text or "#" in text:
        raise ValueError("must be a path, without query or fragment")
    return text


def _as_prefix(value: Any) -> str:
    text = as_str(value)
    if text in ("", "/"):
        return ""
    return _as_path(text).rstrip("/")


def _as_origin(value: Any) -> str:
    """A web origin (RFC 6454): scheme, host and optional port, nothing else."""
    text = as_nonempty_str(value)
    url = as_http_url(text)
    if url.raw_path not in ("", "/") or text.endswith("/"):
        raise ValueError(f"must be an origin such as https://app.example.com, not {text!r}")
    return str(url.origin())


def _as_realm(value: Any) -> str:
    text = as_nonempty_str(value)
    if "/" in text or text.strip() != text:
        raise ValueError(f"must be a realm name, not {text!r}")
    return text


def _as_storage(value: Any) -> str:
    text = as_nonempty_str(value)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme not in STORAGE_SCHEMES:
        raise ValueError(
            "must be memory://, or a redis://, rediss://, unix://, redis+sentinel:// or "
            "redis+cluster:// URL"
        )
    if "+" in scheme:
        from gateway.storage.redis import check_uri

        check_uri(text)
    return text


def _as_network(value: Any) -> IPNetwork:
    try:
        return ipaddress.ip_network(as_nonempty_str(value), strict=False)
    except ValueError as exc:
        raise ValueError(f"is not an IP address or CIDR: {exc}") from None


def _as_secret(value: Any) -> Secret:
    text = as_nonempty_str(value).strip()
    if any(c in text for c in "\r\n\x00"):
        raise ValueError("must be one line")
    return Secret(text)


def _read_admin(r: Reader, top: dict[str, Any], env: Mapping[str, str]) -> Admin:
    """``admin.token_env`` names the variable holding the admin token; only its digest is
    kept.  A named variable that is unset or short is a problem, not a silently closed API."""
    ap: KeyPath = ("admin",)
    section = r.section(top.get("admin"), ap, {"token_env", "listen", "serve_health"})
    serve_health = r.get(section, ap, "serve_health", as_bool, False)
    if serve_health and "listen" not in section:
        r.problem(
            (*ap, "serve_health"),
            "moves health to the admin listener: set admin.listen too",
        )
    listen = None
    if "listen" in section:
        lp: KeyPath = (*ap, "listen")
        listen_s = r.section(section["listen"], lp, {"host", "port"})
        listen = Listen(
            host=r.get(listen_s, lp, "host", as_nonempty_str, DEFAULT_HOST),
            port=r.require(listen_s, lp, "port", as_int(0, 65535), 0),
        )
    name = r.get(section, ap, "token_env", as_nonempty_str, None)
    if name is None:
        return Admin(listen=listen, serve_health=serve_health)
    if not _ENV_NAME_RE.match(name):
        r.problem((*ap, "token_env"), f"{name!r} is not an environment variable name")
        return Admin(listen=listen, serve_health=serve_health)
    token = env.get(name, "")
    if not token:
        r.problem((*ap, "token_env"), f"environment variable {name} is not set")
        return Admin(name, listen=listen, serve_health=serve_health)
    if len(token) < MIN_ADMIN_TOKEN:
        r.problem(
            (*ap, "token_env"),
            f"the admin token in {name} is shorter than {MIN_ADMIN_TOKEN} characters "
            "(make one with: openssl rand -hex 32)",
        )
        return Admin(name, listen=listen, serve_health=serve_health)
    digest = hashlib.sha256(token.encode("utf-8")).digest()
    return Admin(name, digest, listen, serve_health)


def workers_problem(workers: int, storage: str) -> str | None:
    """Why ``workers`` processes cannot run on ``storage``, or ``None``.

    Every worker is a process of its own: with ``memory://`` each would count its own rate
    limits, token uses and quotas, keep its own client registry (so an approval made in
    one would not be seen by the others) and seal tokens with its own key.  Nothing the
    gateway keeps is safe to split that way, so several workers need shared storage."""
    if workers > 1 and storage.lower().startswith("memory://"):
        return (
            f"{workers} workers would each keep their own memory:// state (rate limits, "
            "token uses, quotas, the client registry), which must be shared: set storage "
            "to redis://... (or run one worker)"
        )
    return None


def _read_server(r: Reader, top: dict[str, Any], storage: str) -> Server:
    sp: KeyPath = ("server",)
    section = r.section(top.get("server"), sp, {"workers", "shutdown_timeout"})
    workers = r.get(section, sp, "workers", as_int(1, MAX_WORKERS), 1)
    problem = workers_problem(workers, storage)
    if problem is not None:
        r.problem((*sp, "workers"), problem)
    return Server(
        workers=workers,
        shutdown_timeout=r.get(
            section, sp, "shutdown_timeout", as_duration, DEFAULT_SHUTDOWN_TIMEOUT
        ),
    )


def _as_address(value: Any) -> str:
    text = as_nonempty_str(value)
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address") from None
    return text


def _read_cimd(r: Reader, top: dict[str, Any], base_dir: Path) -> Cimd:
    cp: KeyPath = ("cimd",)
    section = r.section(top.get("cimd"), cp, {"enabled", "mode", "fetch"})
    fp: KeyPath = (*cp, "fetch")
    fetch_s = r.section(
        section.get("fetch"),
        fp,
        {"timeout", "max_bytes", "max_cache_age", "ca_file", "allow_private_addresses", "resolve"},
    )
    ca_name = r.get(fetch_s, fp, "ca_file", as_nonempty_str, None)
    ca_file = None if ca_name is None else base_dir / ca_name
    if ca_file is not None and not ca_file.is_file():
        r.problem((*fp, "ca_file"), f"{ca_file} is not a readable file")
    resolve_s = fetch_s.get("resolve") or {}
    resolve: list[tuple[str, str]] = []
    if not isinstance(resolve_s, dict):
        r.problem((*fp, "resolve"), "must map host names to IP addresses")
    else:
        for host, address in resolve_s.items():
            try:
                resolve.append((str(host).lower().rstrip("."), _as_address(address)))
            except ValueError as exc:
                r.problem((*fp, "resolve", str(host)), str(exc))
    fetch = CimdFetch(
        timeout=r.get(fetch_s, fp, "timeout", as_duration, 5.0),
        max_bytes=r.get(fetch_s, fp, "max_bytes", as_size, 5 * 1024),
        max_cache_age=r.get(fetch_s, fp, "max_cache_age", as_duration, 24 * 3600.0),
        ca_file=ca_file,
        allow_private_addresses=tuple(
            r.items(
                fetch_s.get("allow_private_addresses"),
                (*fp, "allow_private_addresses"),
                _as_network,
            )
        ),
        resolve=tuple(resolve),
    )
    return Cimd(
        enabled=r.get(section, cp, "enabled", as_bool, False),
        mode=r.get(section, cp, "mode", as_choice("bridge", "police"), "bridge"),
        fetch=fetch,
    )


def _read_policy_reload(r: Reader, top: dict[str, Any]) -> PolicyReload:
    pp: KeyPath = ("policy_reload",)
    section = r.section(top.get("policy_reload"), pp, {"watch", "interval"})
    interval = r.get(section, pp, "interval", as_duration, DEFAULT_RELOAD_INTERVAL)
    if interval < MIN_RELOAD_INTERVAL:
        r.problem((*pp, "interval"), f"must be at least {MIN_RELOAD_INTERVAL:g}s")
        interval = DEFAULT_RELOAD_INTERVAL
    return PolicyReload(watch=r.get(section, pp, "watch", as_bool, False), interval=interval)


def _read_metrics(r: Reader, top: dict[str, Any], admin: Admin) -> MetricsSettings:
    """``metrics``; the admin listener and the admin token must exist where they are asked
    for, or a scrape would find nothing (or a metrics endpoint nobody can read)."""
    mp: KeyPath = ("metrics",)
    section = r.section(top.get("metrics"), mp, {"enabled", "listener", "require_admin_token"})
    settings = MetricsSettings(
        enabled=r.get(section, mp, "enabled", as_bool, True),
        listener=r.get(section, mp, "listener", as_choice("main", "admin"), "main"),
        require_admin_token=r.get(section, mp, "require_admin_token", as_bool, False),
    )
    if settings.listener == "admin" and admin.listen is None:
        r.problem((*mp, "listener"), "admin needs admin.listen (a listener of its own)")
    if settings.require_admin_token and admin.token_env is None:
        r.problem((*mp, "require_admin_token"), "needs admin.token_env (the admin token)")
    return settings


def _read_registry(r: Reader, top: dict[str, Any], env: Mapping[str, str]) -> RegistrySettings:
    """``registry.key_env`` names the variable with the sealing keys; a named variable that
    is unset or holds no valid key is a problem (tokens would silently not be kept)."""
    rp: KeyPath = ("registry",)
    section = r.section(top.get("registry"), rp, {"key_env", "job_interval", "dry_run"})
    interval = r.get(section, rp, "job_interval", as_duration, 60.0)
    dry_run = r.get(section, rp, "dry_run", as_bool, False)
    name = r.get(section, rp, "key_env", as_nonempty_str, None)
    keys: tuple[bytes, ...] = ()
    if name is not None:
        if not _ENV_NAME_RE.match(name):
            r.problem((*rp, "key_env"), f"{name!r} is not an environment variable name")
        elif not env.get(name, "").strip():
            r.problem((*rp, "key_env"), f"environment variable {name} is not set")
        else:
            try:
                keys = parse_keys(env[name])
            except ValueError as exc:
                r.problem((*rp, "key_env"), f"{name}: {exc}")
    return RegistrySettings(name, keys, interval, dry_run)


def read_settings(
    document: Document,
    base_dir: Path,
    problems: list[Problem],
    env: Mapping[str, str] | None = None,
) -> Settings:
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
        profile=r.get(up_s, up, "profile", as_choice(*PROFILES), "generic"),
        path_prefix=r.get(up_s, up, "path_prefix", _as_prefix, ""),
        discovery_cache=r.get(up_s, up, "discovery_cache", as_duration, DEFAULT_DISCOVERY_CACHE),
        initial_access_token=r.get(up_s, up, "initial_access_token", _as_secret, None),
    )
    if upstream.profile == "keycloak":
        if "/realms/" in upstream_url.raw_path + "/":
            r.problem(
                (*up, "url"),
                "with profile keycloak, upstream.url is Keycloak's base URL, not a realm's: "
                "the realm comes from each request's path (policies per realm: tenants)",
            )
        url_path = upstream_url.raw_path.rstrip("/")
        if upstream.path_prefix and url_path.endswith(upstream.path_prefix):
            r.problem(
                (*up, "path_prefix"),
                f"upstream.url already ends with {upstream.path_prefix}: requests would go to "
                f"{url_path}{upstream.path_prefix}/realms/...; path_prefix is the prefix of "
                "the public paths (and of the issuer), upstream.url's path is added to every "
                "forwarded request, so set the prefix in one of them",
            )
        if paths is not None:
            r.problem(
                (*up, "registration_paths"),
                "the keycloak profile knows every realm's registration path; remove this key",
            )
    elif upstream.path_prefix:
        r.problem((*up, "path_prefix"), "applies to the keycloak profile only")

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
    tenants: list[tuple[str, Path]] = []
    tp: KeyPath = ("tenants",)
    if "tenants" in top:
        if upstream.profile != "keycloak":
            r.problem(tp, "tenants are Keycloak realms: set upstream.profile: keycloak")
        tenant_s = r.mapping(top.get("tenants"), tp)  # every key is a realm
        for realm, file_name in tenant_s.items():
            try:
                name = _as_realm(realm)
                tenants.append((name, base_dir / as_nonempty_str(file_name)))
            except ValueError as exc:
                r.problem((*tp, realm), str(exc))
    kp: KeyPath = ("keycloak",)
    kc = r.section(top.get("keycloak"), kp, {"allow_providers"})
    providers = r.str_list(kc, kp, "allow_providers", ("openid-connect",))
    for index, provider in enumerate(providers):
        if provider not in KEYCLOAK_PROVIDERS:
            r.problem(
                (*kp, "allow_providers", index),
                f"unknown provider {provider!r}; known: {', '.join(KEYCLOAK_PROVIDERS)}",
            )
    if "openid-connect" not in providers and "allow_providers" in kc:
        r.problem((*kp, "allow_providers"), "must include openid-connect")
    cp: KeyPath = ("cors",)
    cors_s = r.section(top.get("cors"), cp, {"allow_origins", "max_age"})
    cors = Cors(
        allow_origins=tuple(
            r.items(cors_s.get("allow_origins"), (*cp, "allow_origins"), _as_origin)
        ),
        max_age=r.get(cors_s, cp, "max_age", as_duration, DEFAULT_CORS_MAX_AGE),
    )
    audit_s = r.section(top.get("audit"), ("audit",), {"sink"})
    sink = r.get(audit_s, ("audit",), "sink", as_nonempty_str, "stdout")
    if sink not in ("stdout", "stderr"):
        sink = str(base_dir / sink)

    storage = r.get(top, (), "storage", _as_storage, "memory://")
    admin = _read_admin(r, top, os.environ if env is None else env)
    return Settings(
        listen=listen,
        public_url=public_url,
        upstream=upstream,
        policy_file=policy_file,
        storage=storage,
        trusted_proxies=tuple(
            r.items(top.get("trusted_proxies"), ("trusted_proxies",), _as_network)
        ),
        limits=limits,
        audit=Audit(sink=sink),
        log_level=r.get(
            top, (), "log_level", as_choice("debug", "info", "warning", "error"), "info"
        ),
        tenants=tuple(tenants),
        keycloak=Keycloak(allow_providers=tuple(p for p in providers if p in KEYCLOAK_PROVIDERS)),
        cors=cors,
        admin=admin,
        registry=_read_registry(r, top, os.environ if env is None else env),
        cimd=_read_cimd(r, top, base_dir),
        server=_read_server(r, top, storage),
        policy_reload=_read_policy_reload(r, top),
        metrics=_read_metrics(r, top, admin),
    )
