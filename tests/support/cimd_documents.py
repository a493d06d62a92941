"""A configurable HTTPS server of Client ID Metadata Documents, for the gateway's CIMD tests.

One ``trustme`` CA and one certificate whose SANs are every name in :data:`HOSTS`
(``claude.ai``, ``vscode.dev``, ``chatgpt.com``, ``mcp-client.example.com``...): the
gateway's fetcher is told to resolve those names to 127.0.0.1 (``cimd.fetch.resolve``) and
to trust the CA (``cimd.fetch.ca_file``), so a client_id URL looks like the real one but
for the port (``https://claude.ai:<port>/...``).

Each test says what a (host, path) answers with :meth:`DocumentServer.serve` (a document, or
an :class:`Answer` of any shape: status, body, type, headers, a slow body, a redirect), and
can change it while the gateway runs.  The server counts requests per (host, path)
(``hits``) and TCP connections (``connections``), so a test proves that a refused fetch
never reached it, or that a redirect's target was never asked for.  Anything not configured
answers 404.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
from aiohttp import web

from tests.support.tls_server import TlsAppServer

#: The names on the certificate (and resolved to 127.0.0.1 by the gateway's fetcher).
HOSTS = (
    "claude.ai",
    "vscode.dev",
    "chatgpt.com",
    "mcp-client.example.com",
    "evil.example.com",
    "other-client.example.com",
)


@dataclass
class Answer:
    """What one (host, path) answers: ``document`` (JSON-encoded) or ``body`` (bytes as
    they are), with ``status``, ``content_type`` and ``headers``; ``trickle`` sends the body
    a byte every that many seconds (a slow body)."""

    document: Any = None
    body: bytes | None = None
    status: int = 200
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    trickle: float | None = None

    def payload(self) -> bytes:
        if self.body is not None:
            return self.body
        return json.dumps(self.document).encode("utf-8")


class DocumentServer(TlsAppServer):
    """``async with DocumentServer(cert) as docs: docs.serve(host, path, document)``."""

    def __init__(self, cert: trustme.LeafCert) -> None:
        super().__init__(cert)
        self._answers: dict[tuple[str, str], Answer] = {}
        self.hits: Counter[tuple[str, str]] = Counter()

    # -- configuration ----------------------------------------------------------------

    def url(self, host: str, path: str) -> str:
        """The client_id URL of ``path`` on ``host`` (with this server's port)."""
        return f"https://{host}:{self.port}{path}"

    def serve(self, host: str, path: str, answer: Answer | Mapping[str, Any]) -> str:
        """Answer requests for ``path`` on ``host`` with ``answer`` (a document, or an
        :class:`Answer`) from now on; returns the URL."""
        if not isinstance(answer, Answer):
            answer = Answer(document=dict(answer))
        self._answers[(host, path)] = answer
        return self.url(host, path)

    def hits_of(self, url: str) -> int:
        """How many requests reached the document at ``url``."""
        rest = url.split("://", 1)[1]
        authority, _, path = rest.partition("/")
        return self.hits[(authority.rsplit(":", 1)[0], "/" + path)]

    # -- lifecycle --------------------------------------------------------------------

    def application(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    # -- answering --------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        host = (request.host or "").rsplit(":", 1)[0].lower()
        key = (host, request.path_qs)
        self.hits[key] += 1
        answer = self._answers.get(key)
        if answer is None:
            return web.json_response({"error": "no such document"}, status=404)
        body = answer.payload()
        headers = {"Content-Type": answer.content_type, **answer.headers}
        if answer.trickle is None:
            return web.Response(status=answer.status, body=body, headers=headers)
        response = web.StreamResponse(status=answer.status, headers=headers)
        response.enable_chunked_encoding()
        await response.prepare(request)
        for index in range(len(body)):
            await response.write(body[index : index + 1])
            await asyncio.sleep(answer.trickle)
        await response.write_eof()
        return response


@dataclass(frozen=True)
class Authority:
    """The test CA, its certificate for :data:`HOSTS`, and the CA file the gateway (or the
    upstream, ``NODE_EXTRA_CA_CERTS``) trusts."""

    ca: trustme.CA
    cert: trustme.LeafCert
    ca_file: Path


def make_authority(directory: Path, hosts: tuple[str, ...] = HOSTS) -> Authority:
    ca = trustme.CA()
    cert = ca.issue_cert(*hosts)
    ca_file = directory / "cimd-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return Authority(ca, cert, ca_file)
