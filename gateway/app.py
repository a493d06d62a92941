"""``create_app(settings, policy)``: wiring only.

One catch-all route classifies each request once (:mod:`gateway.http.routes`) and sends
registration requests to the guarded handler and everything else to the transparent
proxy; the gateway's own endpoints live under ``/-/``.  Each resource (the upstream client,
the storage, the audit sink, the discovered registration endpoint) has its own
``cleanup_ctx``, so a start-up that fails half way closes exactly what was opened.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.audit.events import REGISTRATION_EVENT
from gateway.audit.logging import log
from gateway.audit.sink import AuditLog
from gateway.cimd.fetch import DocumentFetcher, FetchSettings
from gateway.config.settings import Settings
from gateway.http.cors import CorsPolicy
from gateway.http.exchange import Exchange
from gateway.http.forwarding import TrustedProxies
from gateway.http.health import add_operational_routes, healthz, not_found
from gateway.http.metadata import serve_metadata
from gateway.http.protocol import http_error_response, serve_with_gateway_protocol
from gateway.http.routes import Kind, Router, Target
from gateway.metrics import Metrics
from gateway.metrics.endpoint import PATH as METRICS_PATH
from gateway.metrics.endpoint import serve_metrics
from gateway.policy.model import Policy
from gateway.policy.policies import Policies
from gateway.profiles.generic import GenericProfile
from gateway.profiles.keycloak import KeycloakProfile
from gateway.ratelimit.limiter import RateLimiter
from gateway.registration.manage import handle_management
from gateway.registration.register import handle_registration
from gateway.registry.admin import add_routes as add_client_admin_routes
from gateway.registry.gate import ClientGate
from gateway.registry.jobs import lifecycle_job
from gateway.registry.records import ClientRecords
from gateway.registry.sealing import Sealer, new_key
from gateway.registry.store import Registry
from gateway.registry.use import guard_use
from gateway.reload.admin import add_routes as add_policy_admin_routes
from gateway.reload.reloader import PolicyReloader
from gateway.reload.watch import policy_reload
from gateway.state import GATEWAY, Gateway
from gateway.storage import open_storage
from gateway.tokens.admin import add_routes as add_admin_routes
from gateway.upstream.client import UpstreamClient
from gateway.upstream.discovery import DiscoveryError, MetadataCache, discover
from gateway.upstream.passthrough import pass_through
from gateway.uri.hosts import warm_up


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The admin listener's errors from aiohttp's router as JSON (the main listener does
    this in its protocol, :func:`gateway.http.protocol.serve_with_gateway_protocol`)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return http_error_response(request, exc)


#: Methods a browser may use on each guarded kind (for CORS preflights).
_CORS_METHODS = {
    Kind.REGISTER: ("POST",),
    Kind.MANAGE: ("GET", "PUT", "DELETE"),
    Kind.DISCOVERY: ("GET", "HEAD"),
    Kind.REFUSE: (),
    Kind.AUTHORIZE: (),
    Kind.TOKEN: (),
}


async def dispatch(request: web.Request) -> web.StreamResponse:
    """Classify the request once: the guarded kinds (registration, management, discovery,
    refused paths) are the gateway's, everything else passes through."""
    gateway = request.app[GATEWAY]
    target = gateway.router.classify(request.rel_url.raw_path)
    kind = target.kind
    if kind is Kind.PASSTHROUGH:
        return await pass_through(request, gateway)
    if kind is Kind.AUTHORIZE or kind is Kind.TOKEN:
        return await guard_use(request, gateway, target)
    if request.method == "OPTIONS":  # a CORS preflight: answered here, never forwarded
        rid = gateway.identify(request).request_id
        return gateway.cors.preflight(request, _CORS_METHODS[kind], rid)
    if kind is Kind.REGISTER:
        response = await handle_registration(request, gateway, target)
    elif kind is Kind.MANAGE:
        response = await handle_management(request, gateway, target)
    elif kind is Kind.DISCOVERY:
        if request.method not in ("GET", "HEAD"):
            return await pass_through(request, gateway)
        response = await serve_metadata(request, gateway, target)
    else:
        response = await refuse(request, gateway, target)
    gateway.cors.decorate(request, response.headers)
    return response


async def refuse(request: web.Request, gateway: Gateway, target: Target) -> web.StreamResponse:
    """A path the upstream would route to client creation but the gateway does not judge
    (a Keycloak sibling provider, a path below a client configuration endpoint): refused
    and audited, never forwarded."""
    exchange = Exchange(request, gateway, REGISTRATION_EVENT, target.tenant)
    exchange.record.note_policy(gateway.policies.for_tenant(target.tenant))

    async def refusal() -> web.StreamResponse:
        assert target.refusal is not None
        raise target.refusal

    return await exchange.run(refusal())


async def _upstream(app: web.Application) -> AsyncIterator[None]:
    upstream = app[GATEWAY].upstream
    await upstream.start()
    try:
        yield
    finally:
        await upstream.close()


async def _storage(app: web.Application) -> AsyncIterator[None]:
    storage = app[GATEWAY].storage
    try:
        yield
    finally:
        await storage.close()


async def _audit(app: web.Application) -> AsyncIterator[None]:
    audit = app[GATEWAY].audit
    try:
        yield
    finally:
        audit.close()


async def _tables(app: web.Application) -> AsyncIterator[None]:
    """Data tables loaded before the first request, not during it."""
    warm_up()
    yield


async def _registration_endpoint(app: web.Application) -> AsyncIterator[None]:
    """Learn the registration endpoint before serving: without it every registration
    would pass through unguarded (RFC 8414 §3).  The endpoints where clients are used
    (authorization, token) are learned too, so pending clients can be stopped there; with
    the registration paths configured, that is best effort."""
    gateway = app[GATEWAY]
    settings = gateway.settings
    if settings.upstream.profile != "keycloak":
        timeout = settings.upstream.discovery_timeout
        if not gateway.router:
            found = await discover(gateway.upstream, timeout)
            gateway.router = build_router(settings, found.registration_paths, found.use_paths)
        else:
            try:
                found = await discover(gateway.upstream, timeout, need_registration=False)
            except DiscoveryError as exc:
                log().warning("client_endpoints_unknown", reason=str(exc)[:300])
            else:
                paths = settings.upstream.registration_paths or ()
                gateway.router = build_router(settings, paths, found.use_paths)
    yield


#: Where the admin listener (``admin.listen``) is bound, once started.
ADMIN_ADDRESS = web.AppKey("admin_address", dict[str, str])


#: Bind the listeners with ``SO_REUSEPORT`` (several worker processes share the ports).
REUSE_PORT = web.AppKey("reuse_port", bool)


def admin_app(gateway: Gateway) -> web.Application:
    """What the admin listener serves: health, the operational endpoints
    (:func:`~gateway.http.health.add_operational_routes`) and the admin API; nothing else."""
    admin = web.Application(middlewares=[json_errors])
    admin[GATEWAY] = gateway
    admin.router.add_get("/-/healthz", healthz)
    add_operational_routes(admin)
    add_admin_routes(admin)
    add_client_admin_routes(admin)
    add_policy_admin_routes(admin)
    metrics = gateway.settings.metrics
    if metrics.enabled and metrics.listener == "admin":
        admin.router.add_get(METRICS_PATH, serve_metrics)
    admin.router.add_route("*", "/{tail:.*}", not_found)
    return admin


async def admin_listener(app: web.Application) -> AsyncIterator[None]:
    """``admin.listen``: the admin API (and health) on a listener of its own, so it need not
    be reachable where the OAuth endpoints are; the public listener answers 404 there."""
    listen = app[GATEWAY].settings.admin.listen
    assert listen is not None
    admin = admin_app(app[GATEWAY])
    shutdown_timeout = app[GATEWAY].settings.server.shutdown_timeout
    runner = web.AppRunner(admin, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    site = web.TCPSite(runner, listen.host, listen.port, reuse_port=app.get(REUSE_PORT, False))
    await site.start()
    sockets = site._server.sockets if site._server is not None else []
    port = sockets[0].getsockname()[1] if sockets else listen.port
    app[ADMIN_ADDRESS]["url"] = f"http://{listen.host}:{port}"
    log().info("admin_listening", host=listen.host, port=port)
    try:
        yield
    finally:
        await runner.cleanup()


def build_router(
    settings: Settings,
    registration_paths: tuple[str, ...] = (),
    use_paths: dict[str, Kind] | None = None,
) -> Router:
    """The upstream's profile (:mod:`gateway.profiles`) behind a router."""
    if settings.upstream.profile == "keycloak":
        return Router(
            KeycloakProfile(
                settings.upstream.path_prefix,
                tenants=(realm for realm, _ in settings.tenants),
                allow_providers=settings.keycloak.allow_providers,
            )
        )
    return Router(
        GenericProfile(
            registration_paths or settings.upstream.registration_paths or (),
            allow_providers=settings.keycloak.allow_providers,
            use_paths=use_paths,
        )
    )


def cimd_fetcher(settings: Settings, metrics: Metrics | None = None) -> DocumentFetcher | None:
    """The metadata document fetcher, when ``cimd.enabled``."""
    cimd = settings.cimd
    if not cimd.enabled:
        return None
    fetch = cimd.fetch
    return DocumentFetcher(
        FetchSettings(
            timeout=fetch.timeout,
            max_bytes=fetch.max_bytes,
            max_cache_age=fetch.max_cache_age,
            ca_file=fetch.ca_file,
            allow_private_addresses=fetch.allow_private_addresses,
            resolve=dict(fetch.resolve),
        ),
        observe=None if metrics is None else metrics.cimd_fetched,
    )


async def _cimd(app: web.Application) -> AsyncIterator[None]:
    fetcher = app[GATEWAY].cimd_fetcher
    if fetcher is None:
        yield
        return
    await fetcher.start()
    try:
        yield
    finally:
        await fetcher.close()


def sealing_keys(settings: Settings) -> tuple[bytes, ...]:
    """The configured keys; with none and ``memory://`` storage, a key of this process's
    own (the sealed tokens die with the process anyway, so nothing is lost by it)."""
    if settings.registry.keys:
        return settings.registry.keys
    if settings.storage.lower().startswith("memory://"):
        return (new_key().encode("ascii"),)
    log().warning(
        "registry_tokens_not_kept",
        reason="registry.key_env is not set: registration access tokens are not stored, so "
        "cleanup, expiry, eviction and admin deletes cannot delete clients upstream",
    )
    return ()


def create_app(
    settings: Settings, policies: Policies | Policy, *, audit: AuditLog | None = None
) -> web.Application:
    """Build the gateway application; nothing touches the network until it starts."""
    app = web.Application()
    policies = policies if isinstance(policies, Policies) else Policies(policies)
    metrics = Metrics(tenants=(realm for realm, _ in settings.tenants), policies=policies)
    storage = open_storage(settings.storage, on_error=metrics.storage_failed)
    registry = Registry(storage)
    if not isinstance(policies, Policies):
        policies = Policies(policies)
    audit = audit or AuditLog(settings.audit.sink)
    audit.observers.append(metrics.observe)
    app[GATEWAY] = Gateway(
        settings=settings,
        policies=policies,
        upstream=UpstreamClient(settings.upstream, metrics=metrics),
        audit=audit,
        storage=storage,
        trusted=TrustedProxies(settings.trusted_proxies),
        router=build_router(settings),
        clients=ClientRecords(storage),
        metadata_cache=MetadataCache(settings.upstream.discovery_cache),
        cors=CorsPolicy(settings.cors),
        limiter=RateLimiter(storage),
        registry=registry,
        gate=ClientGate(registry),
        sealer=Sealer(sealing_keys(settings)),
        reloader=PolicyReloader(settings, policies),
        cimd_fetcher=cimd_fetcher(settings, metrics),
        metrics=metrics,
    )
    app[ADMIN_ADDRESS] = {}
    gateway = app[GATEWAY]
    # Reloads counted, and the policies now in force labelled, after every attempt.
    gateway.reloader.status.listeners.append(
        lambda ok: metrics.policy_reloaded(ok, gateway.policies)
    )
    # Order matters: the audit sink outlives everything that may write to it.
    app.cleanup_ctx.extend(
        [
            _audit,
            _storage,
            _upstream,
            _tables,
            _cimd,
            _registration_endpoint,
            lifecycle_job,
            policy_reload,
        ]
    )
    app.router.add_get("/-/healthz", healthz)
    if not settings.admin.serve_health:  # else on the admin listener only
        add_operational_routes(app)
    if settings.metrics.enabled and settings.metrics.listener == "main":
        app.router.add_get(METRICS_PATH, serve_metrics)
    if settings.admin.listen is None:
        add_admin_routes(app)
        add_client_admin_routes(app)
        add_policy_admin_routes(app)
    else:
        app.cleanup_ctx.append(admin_listener)
    app.router.add_route("*", "/-/{tail:.*}", not_found)
    # Requests aiohttp's parser refuses never reach a handler; errors its router raises
    # are answered as JSON there too; every other path goes to dispatch directly.
    serve_with_gateway_protocol(app, catch_all=app.router.add_route("*", "/{tail:.*}", dispatch))
    return app
