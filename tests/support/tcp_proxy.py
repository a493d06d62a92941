"""A TCP relay between the gateway and the upstream that records what the gateway sends.

Point the gateway at :attr:`RecordingProxy.url` instead of the upstream's own URL: every
byte the gateway writes is kept (all connections interleaved), so a test can tell which
requests reached the upstream (:meth:`RecordingProxy.requests`) and what they carried
(:meth:`RecordingProxy.saw`).  Take a :meth:`RecordingProxy.mark` before the request under
test, so that start-up discovery and earlier requests do not count.
"""

from __future__ import annotations

import asyncio
import contextlib
import re

_REQUEST_LINE = re.compile(
    rb"(?:^|\r\n)((?:GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS|TRACE) \S+) HTTP/1\.[01]\r\n"
)


class RecordingProxy:
    """A TCP relay in front of ``127.0.0.1:<upstream_port>``."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.connections = 0
        self.sent = bytearray()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> RecordingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def mark(self) -> int:
        """A position in :attr:`sent` for :meth:`requests` and :meth:`saw` to start from."""
        return len(self.sent)

    def requests(self, since: int = 0) -> list[str]:
        """The request lines the gateway sent (``"GET /reg/abc"``), in order."""
        return [m.decode("latin-1") for m in _REQUEST_LINE.findall(bytes(self.sent[since:]))]

    def saw(self, needle: bytes, since: int = 0) -> bool:
        """Whether ``needle`` (compared without letter case) was sent since ``since``."""
        return needle.lower() in bytes(self.sent[since:]).lower()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(client_w)
        try:
            upstream_r, upstream_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_w.close()
            return
        self._writers.add(upstream_w)

        async def pump(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, record: bool
        ) -> None:
            with contextlib.suppress(OSError):
                while chunk := await reader.read(65536):
                    if record:
                        self.sent.extend(chunk)
                    writer.write(chunk)
                    await writer.drain()
            with contextlib.suppress(OSError):
                writer.close()

        await asyncio.gather(pump(client_r, upstream_w, True), pump(upstream_r, client_w, False))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in self._writers:
                writer.close()
            await self._server.wait_closed()
            self._server = None
