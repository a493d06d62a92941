"""One guarded exchange: whatever a stage does, one JSON answer and one audit event."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from gateway import rules
from gateway.audit.events import REGISTRATION_EVENT, AuditRecord
from gateway.http.exchange import Exchange
from gateway.http.forwarding import TrustedProxies


class _Audit:
    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    def write(self, record: AuditRecord) -> None:
        self.records.append(record)


def _exchange() -> tuple[Exchange, _Audit]:
    audit = _Audit()
    trusted = TrustedProxies(())
    gateway: Any = SimpleNamespace(
        audit=audit, identify=lambda request: trusted.identify("127.0.0.1", request.headers)
    )
    request = make_mocked_request("POST", "/reg", headers={"User-Agent": "test"})
    return Exchange(request, gateway, REGISTRATION_EVENT), audit


async def test_an_unexpected_fault_is_a_json_502_and_one_event() -> None:
    exchange, audit = _exchange()

    async def broken() -> web.StreamResponse:
        raise RuntimeError("a bug")

    response = await exchange.run(broken())
    assert isinstance(response, web.Response)
    assert response.status == 502
    assert json.loads(response.body)["error"] == rules.internal_error().error
    assert [r.decision for r in audit.records] == ["error"]
    assert audit.records[0].rule == rules.internal_error().rule


async def test_a_refusal_is_its_error_and_one_event() -> None:
    exchange, audit = _exchange()

    async def refused() -> web.StreamResponse:
        raise rules.REQUEST_TOO_LARGE.refuse("too large")

    response = await exchange.run(refused())
    assert response.status == 413
    assert [r.decision for r in audit.records] == ["denied"]


async def test_an_answer_is_passed_on_with_its_status_in_the_event() -> None:
    exchange, audit = _exchange()

    async def answered() -> web.StreamResponse:
        return web.Response(status=201, text="{}")

    response = await exchange.run(answered())
    assert response.status == 201
    assert [r.status for r in audit.records] == [201]
