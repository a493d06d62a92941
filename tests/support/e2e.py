"""Helpers for end-to-end hardening tests: requests through the gateway, the wire-format
checks every refusal must pass, policies derived from the shipped default, and a TCP
listener that records every connection made to it (to prove nothing was fetched)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.support.paths import ROOT

DEFAULT_POLICY = ROOT / "policies" / "default.yaml"
MANAGED_LIST = ROOT / "gateway" / "data" / "mcp-clients.yaml"

#: RFC 6749 §5.2: error_description = 1*( %x20-21 / %x23-5B / %x5D-7E )
WIRE_DESCRIPTION = re.compile(r"^[\x20\x21\x23-\x5b\x5d-\x7e]*$")
REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")
#: What ``Server`` must never reveal.
FINGERPRINTS = ("aiohttp", "python")

EVIL_CB = "https://evil.example.com/cb"


@dataclass
class Answer:
    """One HTTP answer, read whole."""

    status: int
    headers: dict[str, str]
    all_headers: list[tuple[str, str]]
    body: bytes
    elapsed: float = 0.0

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"Answer({self.status}, {self.body[:400]!r})"


async def request(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    json_body: Any = None,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """Send one request; ``json_body`` is sent as UTF-8 JSON (non-ASCII kept raw)."""
    headers = dict(headers or {})
    if json_body is not None:
        data = json.dumps(json_body, ensure_ascii=False).encode("utf-8")
        headers.setdefault("Content-Type", "application/json")
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with session.request(method, url, data=data, headers=headers) as response:
        body = await response.read()
        return Answer(
            status=response.status,
            headers=dict(response.headers),
            all_headers=list(response.headers.items()),
            body=body,
            elapsed=loop.time() - started,
        )


async def register(
    session: aiohttp.ClientSession, gateway: Any, body: Any, **kwargs: Any
) -> Answer:
    return await request(session, "POST", gateway.url + "/reg", json_body=body, **kwargs)


def assert_server_header(answer: Any) -> None:
    """``Server: dcr-gateway`` without a version, and no header naming the stack."""
    headers = answer.headers if isinstance(answer, Answer) else answer
    assert headers.get("Server") == "dcr-gateway", headers
    pairs = answer.all_headers if isinstance(answer, Answer) else list(headers.items())
    for name, value in pairs:
        text = f"{name}: {value}".lower()
        for word in FINGERPRINTS:
            assert word not in text, (name, value)


def assert_wire_refusal(answer: Answer, status: int, error: str, rule: str) -> dict[str, Any]:
    """A refusal the gateway made: status, OAuth error, the RFC 6749 §5.2 character set,
    the description naming its rule, ``no-store``, ``Server``, a request id."""
    assert answer.status == status, answer
    assert answer.headers.get("Content-Type", "").startswith("application/json"), answer
    assert answer.headers.get("Cache-Control") == "no-store", answer
    assert_server_header(answer)
    assert REQUEST_ID.match(answer.headers.get("X-Request-ID", "")), answer.headers
    payload = answer.json()
    assert payload["error"] == error, payload
    description = payload["error_description"]
    assert WIRE_DESCRIPTION.match(description), description
    assert description.endswith(f"(rule {rule})"), description
    return payload


def wire_form(text: str) -> str:
    """The documented wire form of a description (docs/policy.md, gateway.errors): ``§``
    as ``section``, ``"`` as ``'``, anything else outside the set as ``U+XXXX``."""
    safe = {chr(c) for c in range(0x20, 0x7F)} - {'"', "\\"}
    words = {"\u00a7": "section ", '"': "'"}
    return "".join(ch if ch in safe else words.get(ch, f"U+{ord(ch):04X}") for ch in text)


def default_policy_data(**changes: Any) -> dict[str, Any]:
    """The shipped default policy as data, with top-level sections updated."""
    data = yaml.safe_load(DEFAULT_POLICY.read_text(encoding="utf-8"))
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


def write_policy(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def revision_of(policy_file: Path) -> str:
    """sha256 of the policy file's bytes followed by the shipped managed list's bytes."""
    digest = hashlib.sha256(policy_file.read_bytes())
    digest.update(MANAGED_LIST.read_bytes())
    return digest.hexdigest()


def events_for(gateway: Any, request_id: str) -> list[dict[str, Any]]:
    return [e for e in gateway.events() if e.get("request_id") == request_id]


@dataclass
class ConnectionRecorder:
    """A TCP listener on 127.0.0.1 (and ``::1`` when available, same port) that records
    every connection and every byte; it answers nothing."""

    port: int = 0
    connections: list[tuple[Any, bytes]] = field(default_factory=list)
    _servers: list[asyncio.Server] = field(default_factory=list)

    async def start(self) -> ConnectionRecorder:
        server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self._servers.append(server)
        self.port = server.sockets[0].getsockname()[1]
        # Without IPv6 loopback, the IPv4 listener still sees ::ffff:127.0.0.1.
        with contextlib.suppress(OSError):
            self._servers.append(await asyncio.start_server(self._accept, "::1", self.port))
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = len(self.connections)
        self.connections.append((writer.get_extra_info("peername"), b""))
        try:
            data = await asyncio.wait_for(reader.read(4096), 0.5)
        except (TimeoutError, ConnectionError):
            data = b""
        self.connections[index] = (self.connections[index][0], data)
        writer.close()

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
            await server.wait_closed()
