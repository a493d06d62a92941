"""Running the gateway in-process for integration tests, with its audit log in a file."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography.fernet import Fernet
from yarl import URL

from gateway.app import create_app
from gateway.audit.logging import configure_logging
from gateway.audit.sink import AuditLog
from gateway.config.settings import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_CORS_MAX_AGE,
    DEFAULT_DISCOVERY_CACHE,
    DEFAULT_GUARDED_CONNECTIONS,
    DEFAULT_MAX_CONNECTIONS,
    Admin,
    Audit,
    Cimd,
    Cors,
    Keycloak,
    Limits,
    Listen,
    MetricsSettings,
    PolicyReload,
    RegistrySettings,
    Secret,
    Settings,
    Upstream,
)
from gateway.policy.loader import load_policy, policy_from_mapping
from gateway.policy.model import Policy
from gateway.policy.policies import Policies

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_POLICY = ROOT / "policies" / "default.yaml"


def make_settings(
    upstream_url: str,
    port: int,
    audit_path: Path,
    *,
    registration_paths: tuple[str, ...] | None = None,
    timeout: float = 5.0,
    storage: str = "memory://",
    max_body_bytes: int = 65536,
    body_timeout: float = 10.0,
    trusted_proxies: tuple[Any, ...] = (),
    public_url: str | None = None,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    guarded_connections: int = DEFAULT_GUARDED_CONNECTIONS,
    passthrough_body_timeout: float = DEFAULT_BODY_TIMEOUT,
    profile: str = "generic",
    path_prefix: str = "",
    tenants: tuple[tuple[str, Path], ...] = (),
    allow_providers: tuple[str, ...] = ("openid-connect",),
    discovery_cache: float = DEFAULT_DISCOVERY_CACHE,
    cors_origins: tuple[str, ...] = (),
    cors_max_age: float = DEFAULT_CORS_MAX_AGE,
    admin_token: str | None = None,
    upstream_initial_access_token: str | None = None,
    registry_keys: tuple[bytes, ...] | None = None,
    job_interval: float = 3600.0,
    dry_run: bool = False,
    admin_listen: Listen | None = None,
    serve_health: bool = False,
    cimd: Cimd | None = None,
    policy_file: Path | None = None,
    policy_reload: PolicyReload | None = None,
    metrics: MetricsSettings | None = None,
) -> Settings:
    """Settings for a test gateway; registration access tokens are sealed with a fresh key
    unless ``registry_keys=()`` (no key configured)."""
    keys = (Fernet.generate_key(),) if registry_keys is None else registry_keys
    return Settings(
        listen=Listen("127.0.0.1", port),
        public_url=URL(public_url or f"http://127.0.0.1:{port}"),
        upstream=Upstream(
            url=URL(upstream_url),
            registration_paths=registration_paths,
            connect_timeout=1.0,
            timeout=timeout,
            discovery_timeout=5.0,
            max_connections=max_connections,
            guarded_connections=guarded_connections,
            profile=profile,
            path_prefix=path_prefix,
            discovery_cache=discovery_cache,
            initial_access_token=(
                None
                if upstream_initial_access_token is None
                else Secret(upstream_initial_access_token)
            ),
        ),
        policy_file=policy_file or DEFAULT_POLICY,
        policy_reload=policy_reload or PolicyReload(),
        storage=storage,
        trusted_proxies=trusted_proxies,
        limits=Limits(
            max_body_bytes=max_body_bytes,
            body_timeout=body_timeout,
            passthrough_body_timeout=passthrough_body_timeout,
        ),
        audit=Audit(sink=str(audit_path)),
        tenants=tenants,
        keycloak=Keycloak(allow_providers=allow_providers),
        cors=Cors(allow_origins=cors_origins, max_age=cors_max_age),
        admin=(
            Admin(listen=admin_listen, serve_health=serve_health)
            if admin_token is None
            else Admin(
                "DCR_GATEWAY_ADMIN_TOKEN",
                hashlib.sha256(admin_token.encode()).digest(),
                admin_listen,
                serve_health,
            )
        ),
        cimd=cimd or Cimd(),
        metrics=metrics or MetricsSettings(),
        registry=RegistrySettings(
            key_env="DCR_GATEWAY_REGISTRY_KEY" if keys else None,
            keys=keys,
            job_interval=job_interval,
            dry_run=dry_run,
        ),
    )


def make_policies(
    policy: Policy | dict[str, Any] | Path | None,
    tenants: Mapping[str, Policy | dict[str, Any] | Path] | None = None,
) -> Policies:
    """The default policy and one per tenant (Keycloak realm), each as :func:`make_policy`
    accepts it."""
    return Policies(
        make_policy(policy), {realm: make_policy(p) for realm, p in (tenants or {}).items()}
    )


def make_policy(policy: Policy | dict[str, Any] | Path | None) -> Policy:
    if policy is None:
        return load_policy(DEFAULT_POLICY)
    if isinstance(policy, Path):
        return load_policy(policy)
    if isinstance(policy, dict):
        return policy_from_mapping(policy)
    return policy


@dataclass
class RunningGateway:
    url: str
    app: web.Application
    audit_path: Path

    def events(self) -> list[dict[str, Any]]:
        """Every audit event of a request written so far, parsed from the JSON lines of
        the sink (the policy loads, ``policy.*``, are in :meth:`all_events`)."""
        return [e for e in self.all_events() if not str(e.get("event")).startswith("policy.")]

    def all_events(self) -> list[dict[str, Any]]:
        """Every audit event written so far, policy loads included."""
        if not self.audit_path.exists():
            return []
        lines = self.audit_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def registrations(self) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("event") == "registration"]

    def audit_text(self) -> str:
        return self.audit_path.read_text(encoding="utf-8") if self.audit_path.exists() else ""


def build(settings: Settings, policy: Policy | Policies) -> web.Application:
    configure_logging("warning")
    return create_app(settings, policy, audit=AuditLog(settings.audit.sink))


def replace_settings(settings: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(settings, **changes)
