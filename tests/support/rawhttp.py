"""Raw HTTP/1.1 over a socket: for requests an HTTP client would normalise or refuse to send.

``send_raw`` writes bytes as given and reads until the gateway closes the connection;
``parse_replies`` splits what came back into responses.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

REQUEST_ID = re.compile(r"[0-9a-f]{32}")


class Reply:
    def __init__(self, status: int, headers: dict[str, list[str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.headers}, {self.body[:300]!r})"


def parse_replies(raw: bytes, heads: tuple[bool, ...] = ()) -> list[Reply]:
    """Split a byte stream of HTTP/1.1 responses; ``heads[i]`` marks a response to HEAD."""
    replies: list[Reply] = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        assert sep, raw[:300]
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers: dict[str, list[str]] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers.setdefault(name.decode().strip().lower(), []).append(value.decode().strip())
        is_head = len(replies) < len(heads) and heads[len(replies)]
        if status == 100:
            raw = rest
            continue
        if is_head or status in (204, 304):
            body, raw = b"", rest
        elif "content-length" in headers:
            length = int(headers["content-length"][0])
            body, raw = rest[:length], rest[length:]
        elif "chunked" in ",".join(headers.get("transfer-encoding", [])).lower():
            body = b""
            while True:
                size_line, _, rest = rest.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    _, _, rest = rest.partition(b"\r\n")
                    break
                body += rest[:size]
                rest = rest[size + 2 :]
            raw = rest
        else:
            body, raw = rest, b""
        replies.append(Reply(status, headers, body))
    return replies


def port_of(gateway: Any) -> int:
    return int(gateway.url.rsplit(":", 1)[1])


async def send_raw(gateway: Any, data: bytes | list[bytes], *, timeout: float = 5.0) -> bytes:
    """Write ``data`` on a fresh connection and read until the gateway closes it.

    A list is written one part at a time with a pause between parts, so that each arrives
    in a read of its own: pipelined requests the server sees one after the other.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(gateway))
    try:
        parts = data if isinstance(data, list) else [data]
        for i, part in enumerate(parts):
            if i:
                await asyncio.sleep(0.1)
            writer.write(part)
            await writer.drain()
        chunks = []
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(65536):
                chunks.append(chunk)
        return b"".join(chunks)
    finally:
        writer.close()
        await writer.wait_closed()


async def raw_one(gateway: Any, data: bytes, *, head: bool = False) -> Reply:
    replies = parse_replies(await send_raw(gateway, data), (head,))
    assert len(replies) == 1, replies
    return replies[0]


async def raw_request(
    gateway: Any,
    method: str,
    target: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One request with ``target`` sent exactly as written (an HTTP client would normalise
    ``/a/../reg`` or ``%2e``), ``body`` as JSON when given."""
    payload = b"" if body is None else json.dumps(body).encode("utf-8")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {gateway.url.split('://', 1)[1]}"]
    lines.append("Connection: close")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload
    return await raw_one(gateway, data, head=method == "HEAD")


def assert_gateway_error(reply: Reply, status: int) -> dict:
    """A gateway-made refusal: the status, a JSON OAuth error body, ``no-store``."""
    assert reply.status == status, reply
    assert reply.header("Content-Type").startswith("application/json"), reply
    assert reply.header("Cache-Control") == "no-store", reply
    answer = reply.json()
    assert isinstance(answer["error"], str) and answer["error"], answer
    assert answer["error_description"], answer
    return answer


def assert_parser_refusal(reply: Reply, status: int = 400) -> dict:
    """A request aiohttp's parser refused, answered by the gateway: its JSON error, its
    ``Server``, a fresh request id, and the connection closed."""
    answer = assert_gateway_error(reply, status)
    assert answer["error"] == "invalid_request", answer
    assert reply.header("Server") == "dcr-gateway", reply
    assert REQUEST_ID.fullmatch(reply.header("X-Request-ID") or ""), reply
    assert (reply.header("Connection") or "close").lower() == "close", reply
    return answer
