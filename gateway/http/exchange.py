"""One guarded exchange: whatever happens, a wire error or an answer, and one audit event.

Registration (and, later, management and CIMD decisions) run their stages inside
:meth:`Exchange.run`, which turns every refusal into its JSON error, every unexpected fault
into ``502 internal.error`` (never a 500), notes a client that hung up, and writes exactly
one audit event in a ``finally``.  Stages only raise; none of them writes the record's error
fields or the event itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

from aiohttp import web

from gateway import rules
from gateway.audit.events import AuditRecord
from gateway.audit.logging import log
from gateway.errors import OAuthError
from gateway.http.forwarding import Caller
from gateway.http.responses import error_response
from gateway.state import Gateway


class ClientGone(Exception):
    """The client closed the connection before the gateway could answer."""


def client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


class Exchange:
    """The audit record of one request, and the edge that maps outcomes to answers."""

    __slots__ = ("caller", "gateway", "record", "request", "started")

    def __init__(
        self, request: web.Request, gateway: Gateway, event: str, tenant: str | None = None
    ) -> None:
        self.started = time.perf_counter()
        self.request = request
        self.gateway = gateway
        self.caller: Caller = gateway.identify(request)
        self.record = AuditRecord(
            event=event,
            request_id=self.caller.request_id,
            client_request_id=self.caller.client_request_id,
            client_ip=self.caller.client_ip,
            user_agent=request.headers.get("User-Agent"),
            method=request.method,
            path=request.rel_url.raw_path,
            tenant=tenant,
        )

    async def run_page(
        self, work: Awaitable[web.StreamResponse], *, wants_json: bool
    ) -> web.StreamResponse:
        """As :meth:`run`, for the authorization endpoint: a refusal is a page (or, asked
        for, JSON) with status 400, never a redirect (RFC 9700 §4.11.2)."""
        from gateway.http.pages import page_or_json

        async def paged() -> web.StreamResponse:
            try:
                return await work
            except OAuthError as error:
                if error.status >= 500:
                    raise
                self.record.note_error(error)
                response = page_or_json(error, self.record.request_id, wants_json=wants_json)
                self.record.status = response.status
                return response

        return await self.run(paged())

    async def run(self, work: Awaitable[web.StreamResponse]) -> web.StreamResponse:
        """Await ``work`` (the exchange's stages) and answer whatever comes of it."""
        record = self.record
        try:
            response = await work
            record.status = response.status
            return response
        except OAuthError as error:
            record.note_error(error)
            return error_response(error, record.request_id)
        except (ClientGone, asyncio.CancelledError) as gone:
            error = rules.CLIENT_DISCONNECTED.refuse("the client closed the connection")
            record.decision = "error"
            record.rule = error.rule
            record.error_description = error.description
            record.client_disconnected = True
            if isinstance(gone, asyncio.CancelledError):
                raise
            # Nobody is left to read this; it only keeps aiohttp from logging a 500.
            return error_response(error, record.request_id)
        except Exception:
            log().exception(
                "exchange_failed", request_id=record.request_id, audit_event=record.event
            )
            error = rules.internal_error()
            record.note_error(error)
            return error_response(error, record.request_id)
        finally:
            record.client_disconnected = record.client_disconnected or client_gone(self.request)
            record.latency_ms = round((time.perf_counter() - self.started) * 1000, 3)
            self.gateway.audit.write(record)
