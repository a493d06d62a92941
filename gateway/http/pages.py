"""HTML pages the gateway shows a user's browser at the authorization endpoint.

When the gateway refuses an authorization request itself (a client awaiting approval, a
metadata document it would not accept), the user is looking at a browser, and the
client's redirect URI is either unvalidated or not to be trusted: RFC 6749 §4.1.2.1 and
RFC 9700 §4.11.2 say to inform the user, never to redirect.  The page names the rule and
the request id, so the user can tell an administrator exactly what to look for.
"""

from __future__ import annotations

import html

from aiohttp import web

from gateway.errors import OAuthError, wire_description
from gateway.http.responses import SERVER, error_response

_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "Server": SERVER,
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def refusal_page(
    error: OAuthError,
    request_id: str,
    *,
    status: int,
    title: str = "This application cannot sign in",
    text: str | None = None,
) -> web.Response:
    """The page shown instead of the authorization server's."""
    message = text if text is not None else wire_description(error.description) + "."
    document = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title>"
        "<meta name=viewport content='width=device-width, initial-scale=1'></head>"
        "<body style='font-family:system-ui,sans-serif;max-width:36em;margin:4em auto'>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>"
        f"<p><small>Reference: {html.escape(request_id)} ({html.escape(error.rule)})"
        "</small></p></body></html>"
    )
    return web.Response(
        status=status,
        body=document.encode("utf-8"),
        headers={**_HEADERS, "X-Request-ID": request_id},
    )


#: Rule id -> title and text of the page for a client the registry blocks (403): what the
#: user can do differs (wait for an administrator, or nothing, or have it register again).
STATUS_PAGES = {
    "approval.pending": (
        "Awaiting approval",
        "This application is waiting for an administrator to approve it. Try again once "
        "it has been approved.",
    ),
    "client.rejected": (
        "Application not allowed",
        "An administrator has rejected this application.",
    ),
    "client.deleted": (
        "Application no longer registered",
        "This application's registration was removed. The application needs to register again.",
    ),
}


def status_page(error: OAuthError, request_id: str) -> web.Response:
    """The page for a pending, rejected or deleted client (403)."""
    title, text = STATUS_PAGES[error.rule]
    return refusal_page(error, request_id, status=403, title=title, text=text)


def page_or_json(error: OAuthError, request_id: str, *, wants_json: bool) -> web.Response:
    """A refusal at the authorization endpoint: a page (403 for a blocked client, else
    400), or the JSON error when the client asked for JSON; never a redirect."""
    blocked = error.rule in STATUS_PAGES
    if wants_json:
        response = error_response(error, request_id)
        response.set_status(403 if blocked else 400)
        return response
    if blocked:
        return status_page(error, request_id)
    return refusal_page(error, request_id, status=400)


def wants_json(request: web.Request) -> bool:
    """Whether an authorization request asked for JSON rather than a page (a client
    library, not a browser: it sends ``Accept: application/json`` and no ``text/html``)."""
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept
