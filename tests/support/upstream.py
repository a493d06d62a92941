"""Start and stop the bundled node-oidc-provider test authorization server (tests/upstream).

Integration tests need a real authorization server to put the gateway in front of; this module
installs its npm dependencies on demand and runs ``node server.mjs`` as a subprocess.
Apart from aiohttp for the async client count, only the standard library is used.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import aiohttp

UPSTREAM_DIR = Path(__file__).resolve().parent.parent / "upstream"
SERVER_SCRIPT = UPSTREAM_DIR / "server.mjs"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0


class UpstreamError(RuntimeError):
    """The test authorization server could not be installed or started."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (races are possible)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _node_modules_ready() -> bool:
    return (UPSTREAM_DIR / "node_modules" / "oidc-provider" / "package.json").is_file()


def ensure_node_modules() -> None:
    """Run ``npm ci`` in tests/upstream unless oidc-provider is already installed.

    Fast when node_modules exists. A file lock (per checkout) keeps two pytest processes
    (e.g. xdist workers) from running ``npm ci`` over each other.
    """
    if _node_modules_ready():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise UpstreamError("npm is not on PATH; install Node.js 20+ to run integration tests")
    digest = hashlib.sha256(str(UPSTREAM_DIR).encode()).hexdigest()[:16]
    lock_path = Path(tempfile.gettempdir()) / f"dcr-gateway-npm-ci-{digest}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if _node_modules_ready():  # another process installed it while we waited
                return
            result = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=UPSTREAM_DIR,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            if result.returncode != 0 or not _node_modules_ready():
                raise UpstreamError(
                    f"npm ci failed in {UPSTREAM_DIR} (exit {result.returncode}):\n"
                    f"{result.stdout}\n{result.stderr}"
                )
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class UpstreamServer:
    """One ``node server.mjs`` process.

    ``issuer`` defaults to the server's own URL; pass the gateway's public URL when the
    server sits behind the gateway, because MCP clients require the metadata ``issuer`` to
    equal the URL they fetched it from.
    """

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._url: str | None = None
        self._issuer: str | None = None
        self._port: int | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(
        self,
        port: int | None = None,
        issuer: str | None = None,
        test_endpoints: bool = True,
        *,
        host: str = "127.0.0.1",
        timeout: float = START_TIMEOUT,
        extra_env: dict[str, str] | None = None,
        trust_proxy: bool = True,
        registration_initial_access_token: str | None = None,
    ) -> Self:
        """Start the server and wait until it serves; returns self.

        ``port=None`` lets the server pick a free port itself (no race with other tests).
        ``trust_proxy=False`` makes it ignore ``X-Forwarded-*`` (``TRUST_PROXY=0``): it then
        builds every URL it publishes from the ``Host`` it was sent.
        ``registration_initial_access_token`` makes registration require
        ``Authorization: Bearer <it>`` (node-oidc-provider's
        ``features.registration.initialAccessToken``), like an authorization server that
        only allows authenticated registration.
        """
        if self._process is not None:
            raise UpstreamError("upstream server already started")
        ensure_node_modules()
        node = shutil.which("node")
        if node is None:
            raise UpstreamError("node is not on PATH; install Node.js 20+ to run integration tests")

        env = dict(os.environ)
        env["PORT"] = str(port if port is not None else 0)
        env["HOST"] = host
        env.pop("ISSUER", None)
        if issuer is not None:
            env["ISSUER"] = issuer
        env["DCR_TEST_ENDPOINTS"] = "1" if test_endpoints else "0"
        env.pop("TRUST_PROXY", None)
        if not trust_proxy:
            env["TRUST_PROXY"] = "0"
        env.pop("REGISTRATION_INITIAL_ACCESS_TOKEN", None)
        if registration_initial_access_token is not None:
            env["REGISTRATION_INITIAL_ACCESS_TOKEN"] = registration_initial_access_token
        if extra_env:
            env.update(extra_env)

        # A file instead of pipes: nobody has to drain them, and the output is there for errors.
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix="dcr-upstream-", suffix=".log", delete=False
        )
        self._process = subprocess.Popen(
            [node, str(SERVER_SCRIPT)],
            cwd=UPSTREAM_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            self._url = self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        self._port = int(self._url.rsplit(":", 1)[1])
        self._issuer = issuer if issuer is not None else self._url
        return self

    def _wait_ready(self, timeout: float) -> str:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.output().splitlines():
                if line.startswith("READY "):
                    return line.split(" ", 1)[1].strip()
            if self._process.poll() is not None:
                raise UpstreamError(
                    f"upstream server exited with {self._process.returncode} before READY:\n"
                    f"{self.output()}"
                )
            time.sleep(0.02)
        raise UpstreamError(
            f"upstream server did not print READY within {timeout:.0f}s:\n{self.output()}"
        )

    def stop(self) -> None:
        """Terminate the process (SIGTERM, then SIGKILL) and remove its log file."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT)
        log, self._log = self._log, None
        if log is not None:
            log.close()
            with contextlib.suppress(OSError):
                os.unlink(log.name)

    def output(self) -> str:
        """Everything the server printed so far (stdout and stderr), for error messages."""
        if self._log is None:
            return ""
        try:
            return Path(self._log.name).read_text(errors="replace")
        except OSError:
            return ""

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> Self:
        if self._process is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ addresses

    @property
    def url(self) -> str:
        """The address the server listens on, e.g. ``http://127.0.0.1:41234`` (no slash)."""
        if self._url is None:
            raise UpstreamError("upstream server is not started")
        return self._url

    @property
    def port(self) -> int:
        if self._port is None:
            raise UpstreamError("upstream server is not started")
        return self._port

    @property
    def issuer(self) -> str:
        """The issuer it was started with (its own URL unless one was given)."""
        if self._issuer is None:
            raise UpstreamError("upstream server is not started")
        return self._issuer

    # ------------------------------------------------------------------ test endpoints

    def _get_json(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.loads(response.read())

    def client_ids(self) -> list[str]:
        """Ids of the clients the server stores now (needs test endpoints)."""
        return list(self._get_json("/__test/clients")["client_ids"])

    def client_count(self) -> int:
        """How many clients the server stores now (blocking; needs test endpoints)."""
        return int(self._get_json("/__test/clients")["count"])

    async def aclient_count(self, session: aiohttp.ClientSession | None = None) -> int:
        """Async :meth:`client_count`, for tests that must not block the event loop."""
        if session is None:
            async with aiohttp.ClientSession() as own:
                return await self.aclient_count(own)
        async with session.get(self.url + "/__test/clients") as response:
            response.raise_for_status()
            return int((await response.json())["count"])
