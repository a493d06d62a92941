"""The admin API for policies: what is in force, and a reload on request.

``GET /-/admin/policy`` answers the reload status (:class:`~gateway.reload.status.
PolicyStatus`: the revision in force, its files, when it was loaded, the counts and the
last error) and each policy's own revision; ``POST /-/admin/policy/reload`` reloads every
policy file now, as SIGHUP does, and answers the outcome: 200 with the revision (and
whether it changed), or 409 ``admin.policy_invalid`` with the problems, the old policies
still in force.  Both need the admin token and write one audit event
(``admin.policy.show``, ``admin.policy.reload``); the reload writes its own
``policy.loaded`` or ``policy.reload_failed`` as every reload does.
"""

from __future__ import annotations

from aiohttp import web

from gateway import rules
from gateway.http.exchange import Exchange
from gateway.http.responses import json_response
from gateway.state import GATEWAY
from gateway.tokens.admin import check_admin

PATH = "/-/admin/policy"
RELOAD_PATH = PATH + "/reload"
EVENT_SHOW = "admin.policy.show"
EVENT_RELOAD = "admin.policy.reload"


def _authorized(exchange: Exchange, method: str) -> None:
    request, gateway = exchange.request, exchange.gateway
    check_admin(gateway.settings.admin, request.headers.getall("Authorization", []))
    exchange.record.extra["admin_token_name"] = gateway.settings.admin.token_env
    if request.method != method:
        raise rules.ADMIN_METHOD.refuse(
            f"{request.method} is not allowed here; use {method}", allow=method
        )


async def show(request: web.Request) -> web.StreamResponse:
    exchange = Exchange(request, request.app[GATEWAY], EVENT_SHOW)

    async def work() -> web.StreamResponse:
        _authorized(exchange, "GET")
        gateway, record = exchange.gateway, exchange.record
        policies = gateway.policies
        body = {
            **gateway.reloader.status.public(),
            "policies": {role: p.revision for role, p in policies.roles()},
            "watch": gateway.settings.policy_reload.watch,
            "interval": gateway.settings.policy_reload.interval,
        }
        record.policy_revision = policies.revision
        record.decision, record.rule = "allowed", rules.ALLOW_ADMIN.id
        return json_response(200, body, record.request_id)

    return await exchange.run(work())


async def reload(request: web.Request) -> web.StreamResponse:
    exchange = Exchange(request, request.app[GATEWAY], EVENT_RELOAD)

    async def work() -> web.StreamResponse:
        _authorized(exchange, "POST")
        gateway, record = exchange.gateway, exchange.record
        outcome = await gateway.reloader.reload(gateway, "admin")
        record.policy_revision = outcome.revision
        record.extra["changed"] = outcome.changed
        if not outcome.ok:
            record.extra["problems"] = list(outcome.problems[:20])
            raise rules.ADMIN_POLICY_INVALID.refuse(
                f"the policy files do not load; the policies in force stay: {outcome.error}"
            )
        record.decision, record.rule = "allowed", rules.ALLOW_ADMIN.id
        body = {"policy_revision": outcome.revision, "changed": outcome.changed}
        return json_response(200, body, record.request_id)

    return await exchange.run(work())


def add_routes(app: web.Application) -> None:
    app.router.add_route("*", PATH, show)
    app.router.add_route("*", RELOAD_PATH, reload)
