"""Requests aiohttp's HTTP parser refuses before any handler runs.

A request whose framing the parser cannot accept (a bad chunk size, folded or oversized
header fields, a bare CR, a target that is not UTF-8, a version it does not speak, a
``Content-Encoding`` it cannot decode...; RFC 9112 §2.2, §3, §5, §6, §7.1) never reaches
the application, its middlewares or :class:`gateway.http.exchange.Exchange`: aiohttp's
``RequestHandler`` answers it itself from ``handle_error`` with a text/plain 400 (for
``br`` telling the client to "install Brotli"), writes no audit event, and logs a traceback
on ``aiohttp.server`` whose message quotes the offending raw line, bearer token included.

The gateway serves its connections with :class:`GatewayRequestHandler` instead, a
subclass of that protocol which answers these refusals like every other one: the JSON
error of ``request.malformed`` (``request.content_encoding``, 415, for a content coding),
``no-store``, ``Server: dcr-gateway``, a fresh request id, then the connection is closed
(RFC 9112 §6.3, §11.2: once the framing is in doubt, nothing after it on the connection can
be told apart from a smuggled request).  A target
that is a registration endpoint gets its one audit event; every refusal gets one log line
that quotes no byte of the request.

Because the parser failed, nothing parsed is left: the request line is recovered from the
bytes themselves (:func:`recover_request_line`).  Each connection keeps the first
:data:`RECENT_LIMIT` bytes received since the parser was last between two messages, which
is where the failing message's request line is.  "First" rather than "last": a request
line inside the refused message's body (a CL.TE smuggling attempt hiding ``POST /reg``) is
not the request that was refused.

Errors aiohttp's router raises itself (:func:`http_error_response`) are answered here too,
wrapping the application's handler once rather than through a middleware (which aiohttp
looks up, binds and calls on every request).

aiohttp has no public hook for the protocol class: ``web.Server.__call__`` builds
``RequestHandler`` itself, and ``Application._make_handler`` (which ``AppRunner`` calls for
``web.run_app`` and pytest-aiohttp's ``TestServer`` alike) builds ``web.Server``.  Subclassing
``web.Application`` is deprecated (it warns), so :func:`serve_with_gateway_protocol` gives
the gateway's own application instance a ``_make_handler`` returning a
:class:`GatewayServer`; no aiohttp class is patched.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http import RawRequestMessage
from aiohttp.http_exceptions import (
    BadHttpMethod,
    BadStatusLine,
    ContentEncodingError,
    ContentLengthError,
    HttpProcessingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
    TransferEncodingError,
)
from aiohttp.streams import StreamReader
from aiohttp.web_urldispatcher import AbstractRoute, UrlMappingMatchInfo

from gateway import rules
from gateway.audit.events import (
    MANAGEMENT_EVENT,
    MANAGEMENT_EVENTS,
    MAX_TEXT,
    REGISTRATION_EVENT,
    AuditRecord,
)
from gateway.audit.logging import log
from gateway.errors import OAuthError
from gateway.http.forwarding import new_request_id
from gateway.http.inflight import IN_FLIGHT
from gateway.http.responses import error_response
from gateway.http.routes import Kind
from gateway.state import GATEWAY

#: Bytes of a not yet parsed message kept per connection to recover its request line: two
#: of aiohttp's longest request lines (``max_line_size`` is 8190).
RECENT_LIMIT = 16 * 1024

# RFC 9112 §3: method SP request-target SP HTTP-version; a method is a token (RFC 9110
# §5.6.2).  The target is anything but spaces and controls, so a non-UTF-8 one is still
# recovered.
_REQUEST_LINE = re.compile(
    rb"([!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}) ([^\x00-\x20\x7f]{1,16384}) (HTTP/[0-9]\.[0-9])"
)
_SCHEME_AUTHORITY = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*")


@dataclass(frozen=True, slots=True)
class RequestLine:
    """A request line recovered from raw bytes; ``target`` is ASCII, every byte outside
    ``%x21-7E`` percent-encoded (so it is safe in a JSON log and in an audit event)."""

    method: str
    target: str
    version: str

    @property
    def path(self) -> str:
        """The path of the target (RFC 9112 §3.2): origin-form without its query,
        absolute-form's path; an asterisk- or authority-form target as it is."""
        target = self.target
        if not target.startswith("/"):
            authority = _SCHEME_AUTHORITY.match(target)
            if authority is None:
                return target
            target = target[authority.end() :]
        return re.split(r"[?#]", target, maxsplit=1)[0] or "/"


def _ascii(raw: bytes) -> str:
    return "".join(chr(b) if 0x21 <= b <= 0x7E else f"%{b:02X}" for b in raw)


def recover_request_line(data: bytes) -> RequestLine | None:
    """The request line ``data`` starts with, if it has the shape of one.

    Empty lines before it are skipped (RFC 9112 §2.2) and a bare LF ends it as well as
    CRLF; anything else that does not match ``method SP target SP HTTP/d.d`` (a bad method,
    a CR or a tab inside the line, a line not ended within ``data``) is None: then nothing
    can be said about the request, and nothing is guessed from later lines.
    """
    data = data.lstrip(b"\r\n")
    end = data.find(b"\n")
    if end < 0:
        return None
    line = data[:end].removesuffix(b"\r")
    match = _REQUEST_LINE.fullmatch(line)
    if match is None:
        return None
    method, target, version = match.groups()
    return RequestLine(method.decode("ascii"), _ascii(target), version.decode("ascii"))


# The parser's exceptions carry the raw bytes in their message; only the class and a few
# words of llhttp's reason are looked at, to choose one of these fixed descriptions.
_BY_REASON: tuple[tuple[str, str], ...] = (
    ("chunk size", "bad chunk size (RFC 9112 §7.1)"),
    ("chunk", "bad chunked framing (RFC 9112 §7.1)"),
    ("can't be present with", "both Transfer-Encoding and Content-Length (RFC 9112 §6.1)"),
    ("transfer-encoding", "an invalid Transfer-Encoding (RFC 9112 §6.1)"),
    ("content-length", "an invalid Content-Length (RFC 9112 §6.2)"),
    ("duplicate", "a repeated header field that must appear once"),
    ("too many headers", "too many header fields"),
    ("whitespace", "obsolete line folding or stray whitespace in a header (RFC 9112 §5.2)"),
    ("expected lf", "a bare CR or a line not ended by CRLF (RFC 9112 §2.2)"),
    ("value char", "a forbidden character in a header field value (RFC 9110 §5.5)"),
    ("header token", "an invalid header field name (RFC 9110 §5.1)"),
    ("header", "an invalid header field (RFC 9112 §5)"),
)
_GENERIC = "the request's HTTP framing is invalid"


def _what(exc: HttpProcessingError) -> str | None:
    if isinstance(exc, LineTooLong):
        return "a request line or header field longer than the gateway accepts"
    if isinstance(exc, InvalidURLError):
        return "an invalid request target (RFC 9112 §3.2)"
    if isinstance(exc, BadHttpMethod):
        if "HTTPS" in exc.message:
            return "not HTTP (TLS sent to a plain-HTTP port?)"
        return "an invalid method (RFC 9112 §3.1)"
    if isinstance(exc, BadStatusLine):
        return "an invalid request line (RFC 9112 §3)"
    if isinstance(exc, TransferEncodingError):
        return "bad chunked framing (RFC 9112 §7.1)"
    if isinstance(exc, ContentLengthError):
        return "a body shorter than its Content-Length (RFC 9112 §6.2)"
    if isinstance(exc, InvalidHeader):
        return "an invalid header field (RFC 9112 §5)"
    reason = exc.message.split(":", 1)[0].lower()
    return next((what for word, what in _BY_REASON if word in reason), None)


def refusal(exc: HttpProcessingError) -> OAuthError:
    """The wire error for a request the parser refused: a description that names the fault
    in general terms and quotes nothing."""
    if isinstance(exc, ContentEncodingError):
        return rules.REQUEST_CONTENT_ENCODING.refuse(
            "Content-Encoding is not accepted here; send the body uncompressed"
        )
    what = _what(exc)
    return rules.REQUEST_MALFORMED.refuse(f"{_GENERIC}: {what}" if what else _GENERIC)


def answer_status(error: OAuthError, parser_status: int) -> int:
    """The status aiohttp chose when it is a 4xx (400, 413, 431...), for ``request.malformed``;
    a content coding is always 415, as the registration endpoint answers it."""
    if error.rule == rules.REQUEST_MALFORMED.id and 400 <= parser_status < 500:
        return parser_status
    return error.status


class GatewayRequestHandler(web.RequestHandler):
    """aiohttp's HTTP/1 protocol, with the gateway's answer to requests it cannot parse.

    Two methods are overridden, because aiohttp offers no other way in:

    - ``data_received`` records the bytes of the message being parsed (bounded) before
      handing them on unchanged, so a refusal can say which request line it refused.  It
      reads two attributes of the base class, ``_request_count`` and ``_messages``, to see
      where one message ends.
    - ``handle_error`` answers parser refusals (an ``HttpProcessingError``) with the JSON
      error, the audit event and a log line free of request bytes, without the base class's
      ``log_exception`` traceback; every other error is the base class's.
    """

    __slots__ = ("_app", "_in_body", "_refused", "_refused_line", "_unparsed")

    def __init__(self, manager: web.Server, *, app: web.Application, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._app = app
        # The first RECENT_LIMIT bytes (or so) since the parser was last between two
        # messages.
        self._unparsed: bytes = b""
        # The body of the last parsed message while it is still arriving.
        self._in_body: StreamReader | None = None
        # Whether the parser refused on this connection, and the request line it refused.
        self._refused = False
        self._refused_line: RequestLine | None = None

    def data_received(self, data: bytes) -> None:
        if self._refused:  # the connection is being refused: nothing more to keep
            web.RequestHandler.data_received(self, data)
            return
        body = self._in_body
        in_body = body is not None and not body.is_eof()
        if not in_body:
            # A reference to the first read (the common case: a whole request in one),
            # copied only when a message spans several reads.
            head = self._unparsed
            if not head:
                self._unparsed = data
            elif len(head) < RECENT_LIMIT:
                self._unparsed = head + data[: RECENT_LIMIT - len(head)]
        count = self._request_count
        web.RequestHandler.data_received(self, data)
        if self._request_count == count or not self._messages:
            if body is not None and body.is_eof():
                # The body ended with this read: the next message starts with the next one.
                self._in_body = None
                self._unparsed = b""
            return
        message, payload = self._messages[-1]
        if isinstance(message, RawRequestMessage):
            self._in_body = None if payload.is_eof() else payload
            self._unparsed = b""
            return
        # The parser refused.  In a body still arriving, the refusal is that request's: its
        # handler is reading the body, so the error is handed to the body (aiohttp's parser
        # only queues it as a message of its own, and the handler would wait for the rest
        # of a body that never comes); the handler answers and audits it.
        self._refused = True
        unparsed = bytes(self._unparsed[:RECENT_LIMIT])
        self._refused_line = None if in_body else recover_request_line(unparsed)
        self._unparsed = b""
        self._in_body = None
        if in_body and body is not None:
            body.set_exception(TransferEncodingError("the request body's framing is invalid"))

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        if request.writer.output_size > 0:  # as the base class: too late for an answer
            raise ConnectionError("a response was already sent; cannot send the error")
        error = refusal(exc)
        status = answer_status(error, status)
        request_id = new_request_id()
        peer = request.remote
        audited = self._audit(error, status, request_id, peer)
        log().warning(
            "request_refused_by_parser",
            status=status,
            rule=error.rule,
            reason=type(exc).__name__,
            request_id=request_id,
            peer=peer,
            audited=audited,
        )
        response = error_response(error, request_id)
        response.set_status(status)
        response.force_close()
        return response

    def _audit(self, error: OAuthError, status: int, request_id: str, peer: str | None) -> bool:
        """One registration event when the refused target is the registration endpoint
        (as :func:`gateway.app.dispatch` decides: not for a CORS preflight)."""
        line = self._refused_line
        gateway = self._app.get(GATEWAY)
        if gateway is None or line is None or line.method == "OPTIONS":
            return False
        path = line.path
        target = gateway.router.classify(path)
        if target.kind is Kind.REGISTER:
            event = REGISTRATION_EVENT
        elif target.kind is Kind.MANAGE:
            event = MANAGEMENT_EVENTS.get(line.method, MANAGEMENT_EVENT)
        else:
            return False
        record = AuditRecord(
            event=event,
            request_id=request_id,
            client_ip=peer,
            user_agent=None,
            method=line.method,
            path=path[:MAX_TEXT],
            tenant=target.tenant,
        )
        if len(path) > MAX_TEXT:
            record.truncated["path"] = len(path)
        record.client_id = target.client_id
        record.note_policy(gateway.policies.for_tenant(target.tenant))
        record.note_error(error)
        record.status = status
        gateway.audit.write(record)
        return True


class GatewayServer(web.Server):
    """``web.Server`` whose connections are served by :class:`GatewayRequestHandler`."""

    def __init__(self, handler: Any, *, app: web.Application, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.app = app

    def __call__(self) -> GatewayRequestHandler:
        return GatewayRequestHandler(self, app=self.app, loop=self._loop, **self._kwargs)


def http_error_response(request: web.BaseRequest, exc: web.HTTPException) -> web.Response:
    """An error aiohttp's router raises itself (a target such as ``OPTIONS *`` that no
    route can match, a method a gateway endpoint does not take) as the same JSON as every
    other refusal, never text or HTML."""
    gateway = request.app.get(GATEWAY) if isinstance(request, web.Request) else None
    rid = new_request_id() if gateway is None else gateway.identify(request).request_id
    if exc.status == 404:  # every origin-form path has a route: this target is not one
        error = rules.REQUEST_TARGET.refuse(
            "the request target must be an absolute path (RFC 9112 §3.2)"
        )
        return error_response(error, rid)
    error = rules.REQUEST_TARGET.refuse(exc.reason or "the request cannot be served")
    response = error_response(error, rid)
    response.set_status(exc.status)
    return response


#: Paths the router may send elsewhere than the catch-all route: the gateway's own
#: endpoints (``/-/``), and any path the router decodes before matching (``/%2D/``).
_ROUTED_PREFIXES = ("/-", "/%")


def _catch_all_match(
    app: web.Application, route: AbstractRoute | None
) -> UrlMappingMatchInfo | None:
    """The router's answer for every path below ``route`` (``/{tail:.*}``), built once: a
    match info for that route in ``app``, frozen as the router freezes its own."""
    if route is None:
        return None
    match = UrlMappingMatchInfo({"tail": ""}, route)
    match.add_app(app)
    match.freeze()
    return match


def serve_with_gateway_protocol(
    app: web.Application, catch_all: AbstractRoute | None = None
) -> None:
    """Make every server ``app`` is run with (``web.run_app``, ``AppRunner``, pytest-aiohttp)
    a :class:`GatewayServer`.

    aiohttp's own ``_make_handler`` still builds the stock server first, so freezing the
    app, ``debug`` and ``handler_args`` stay aiohttp's business; its settings are then
    handed to a :class:`GatewayServer` unchanged.  (In asyncio debug or ``-X dev`` mode
    aiohttp warns, once, that a custom attribute is set on the application.)

    ``catch_all``: the route of ``/{tail:.*}`` in an application without middlewares.  A
    request that only it can match (an origin-form path outside :data:`_ROUTED_PREFIXES`
    with no ``%0`` escape, whose decoded newline the route's pattern does not match; no
    ``Expect``) is handed to its handler with a match info built once, instead of
    through aiohttp's router, whose resolution costs every pass-through request more than
    the gateway's own classification of it.
    """
    if catch_all is not None and app.middlewares:
        raise ValueError("the catch-all shortcut would skip the application's middlewares")
    make_stock_server = app._make_handler

    def make_handler(*, loop: asyncio.AbstractEventLoop | None = None, **kwargs: Any) -> web.Server:
        stock = make_stock_server(loop=loop, **kwargs)
        routed = stock.request_handler
        inflight = app.get(IN_FLIGHT)
        match = _catch_all_match(app, catch_all)
        direct = None if match is None else match.handler

        async def answer(request: web.BaseRequest) -> web.StreamResponse:
            # One coroutine does what a middleware, a counting wrapper and the router
            # would do in three, for every request.
            if inflight is not None:
                inflight.enter()
            response = None
            try:
                path = request.raw_path
                if (
                    direct is None
                    or not path.startswith("/")
                    or path.startswith(_ROUTED_PREFIXES)
                    or "%0" in path  # a decoded newline: the router's pattern refuses it
                    or "Expect" in request.headers
                ):
                    response = await routed(request)
                else:
                    request._match_info = match  # type: ignore[attr-defined]
                    response = await direct(request)  # type: ignore[arg-type]
            except web.HTTPException as exc:
                if exc.status < 400:
                    raise
                response = http_error_response(request, exc)
            finally:
                if inflight is not None:
                    inflight.leave(response)
            return response

        return GatewayServer(
            answer,
            app=app,
            request_factory=stock.request_factory,
            handler_cancellation=stock.handler_cancellation,
            loop=stock._loop,
            **stock._kwargs,
        )

    app._make_handler = make_handler  # type: ignore[method-assign]
