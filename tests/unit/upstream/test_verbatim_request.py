"""The upstream request class sends the headers aiohttp's own would, minus its automatic ones."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict

from gateway.upstream.client import VerbatimRequest


@pytest.fixture
async def seen(aiohttp_server):
    """A server that answers with the raw header lines it received."""
    lines: list[list[tuple[str, str]]] = []

    async def record(request: web.Request) -> web.Response:
        lines.append([(k.decode(), v.decode()) for k, v in request.raw_headers])
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    server = await aiohttp_server(app)
    return server, lines


async def _send(server, headers, *, request_class=None) -> None:
    kwargs = {"request_class": request_class} if request_class else {}
    async with aiohttp.ClientSession(auto_decompress=False, **kwargs) as session:
        async with session.get(server.make_url("/x"), headers=headers) as answer:
            await answer.read()


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [("Accept", "*/*"), ("X-Forwarded-For", "127.0.0.1"), ("X-A", "1"), ("x-a", "2")],
        [("Host", "public.example"), ("X-B", "b")],
        [("X-B", "b"), ("host", "public.example")],
    ],
)
async def test_the_headers_sent_are_aiohttps_without_automatic_ones(seen, headers):
    server, lines = seen
    await _send(server, CIMultiDict(headers), request_class=VerbatimRequest)
    await _send(server, CIMultiDict(headers))
    ours, stock = lines
    automatic = {"accept", "accept-encoding", "user-agent"}
    given = {name.lower() for name, _ in headers}
    assert ours == [(k, v) for k, v in stock if k.lower() not in automatic or k.lower() in given]
    assert ours[0][0].lower() == "host" or any(k.lower() == "host" for k, _ in headers)


async def test_host_comes_first_from_the_url(seen):
    server, lines = seen
    await _send(server, CIMultiDict([("X-A", "1")]), request_class=VerbatimRequest)
    assert lines[0][0] == ("Host", f"{server.host}:{server.port}")
