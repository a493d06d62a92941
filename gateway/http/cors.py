"""CORS on the guarded paths, for browser-based clients (MCP Inspector, web IDEs).

A browser-based client discovers and registers from a page, so its requests need CORS
(the Fetch standard); Keycloak answers registration without CORS headers (keycloak
#39629), which is why gateways proxy DCR at all.  On registration, management and
discovery paths the gateway answers preflights itself (``OPTIONS`` is never forwarded
there) and decides the CORS headers of every answer: an allowed origin
(``cors.allow_origins``) gets ``Access-Control-Allow-Origin`` for exactly itself, any
other origin gets none, and whatever CORS headers the upstream sent are removed, so the
upstream's own (often permissive) CORS policy cannot widen the gateway's.  No credentials
mode: registration needs no cookies, and ``Allow-Credentials`` is never sent.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from aiohttp import web

from gateway.config.settings import Cors
from gateway.http.responses import SERVER

#: What browser-based clients send: MCP clients add ``MCP-Protocol-Version`` to discovery
#: requests (MCP authorization, 2025-06-18 and later).
_ALLOWED_HEADERS = "Authorization, Content-Type, MCP-Protocol-Version, X-Request-ID"
_EXPOSED_HEADERS = "Location, Retry-After, WWW-Authenticate, X-Request-ID"


class CorsPolicy:
    def __init__(self, settings: Cors) -> None:
        self.origins = frozenset(settings.allow_origins)
        self.max_age = str(int(settings.max_age))

    def allowed(self, origin: str | None) -> bool:
        return origin is not None and origin in self.origins

    def preflight(
        self, request: web.Request, methods: tuple[str, ...], request_id: str
    ) -> web.Response:
        """The answer to a preflight (``OPTIONS``) on a guarded path: 204, with CORS headers
        only for an allowed origin asking for an allowed method."""
        headers = {
            "Server": SERVER,
            "X-Request-ID": request_id,
            "Vary": "Origin",
            "Cache-Control": "no-store",
        }
        origin = request.headers.get("Origin")
        allow = ", ".join(methods)
        asked = request.headers.get("Access-Control-Request-Method")
        if self.allowed(origin) and (asked is None or asked in methods):
            headers.update(
                {
                    "Access-Control-Allow-Origin": origin or "",
                    "Access-Control-Allow-Methods": allow,
                    "Access-Control-Allow-Headers": _ALLOWED_HEADERS,
                    "Access-Control-Max-Age": self.max_age,
                }
            )
        headers["Allow"] = ", ".join((*methods, "OPTIONS"))
        return web.Response(status=204, headers=headers)

    def decorate(self, request: web.Request, headers: MutableMapping[str, str]) -> None:
        """Replace the CORS headers of an answer on a guarded path with the gateway's."""
        for name in [n for n in headers if n.lower().startswith("access-control-")]:
            del headers[name]
        origin = request.headers.get("Origin")
        if self.allowed(origin):
            headers["Access-Control-Allow-Origin"] = origin or ""
            headers["Access-Control-Expose-Headers"] = _EXPOSED_HEADERS
        if self.origins:
            add_vary(headers, "Origin")


def add_vary(headers: MutableMapping[str, str], name: str) -> None:
    """Add ``name`` to ``Vary`` (RFC 9110 §12.5.5), keeping what the upstream listed."""
    getall = getattr(headers, "getall", None)  # a multidict may hold several Vary lines
    present = getall("Vary", ()) if getall is not None else [headers.get("Vary", "")]
    fields = [f.strip() for line in present for f in line.split(",") if f.strip()]
    if "*" in fields or name.lower() in (f.lower() for f in fields):
        return
    headers["Vary"] = ", ".join((*fields, name))
