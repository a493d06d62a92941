"""gateway.http.inflight: the count a graceful shutdown waits on."""

from __future__ import annotations

import asyncio

from aiohttp import web

from gateway.http.inflight import InFlight


async def test_drained_waits_for_the_last_request() -> None:
    inflight = InFlight()
    inflight.enter()
    inflight.enter()
    waiting = asyncio.ensure_future(inflight.drained(5))
    await asyncio.sleep(0)
    inflight.leave(None)
    await asyncio.sleep(0)
    assert not waiting.done() and inflight.count == 1
    inflight.leave(None)
    assert await waiting is True
    assert inflight.count == 0


async def test_drained_gives_up_after_the_timeout() -> None:
    inflight = InFlight()
    inflight.enter()
    assert await inflight.drained(0.01) is False
    assert inflight.count == 1


async def test_an_idle_server_is_drained_at_once() -> None:
    assert await InFlight().drained(0) is True


def test_while_stopping_an_answer_closes_its_connection() -> None:
    inflight = InFlight()
    inflight.stopping = True
    inflight.enter()
    response = web.Response(text="ok")
    inflight.leave(response)
    assert response.keep_alive is False


def test_before_stopping_the_connection_is_kept() -> None:
    inflight = InFlight()
    inflight.enter()
    response = web.Response(text="ok")
    inflight.leave(response)
    assert response.keep_alive is None  # aiohttp decides, as for any answer
