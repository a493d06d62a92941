"""Start and stop the Keycloak stand-in (tests/upstream/keycloak-standin.mjs).

Keycloak cannot run here, so tests of the gateway's ``keycloak`` profile use a stand-in with
Keycloak's URL layout (``/realms/{realm}/clients-registrations/openid-connect`` and friends)
and one real node-oidc-provider per realm behind it. Conventions follow
:mod:`tests.support.upstream`: a subprocess, a ``READY <url>`` line, the same timeouts.

:func:`realm_session` lets :mod:`tests.support.oauth_flow` run against a realm: that module
always fetches ``/.well-known/openid-configuration`` at the root of its ``base_url``'s origin,
where Keycloak serves nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, cast

import aiohttp
import pytest
from yarl import URL

from tests.support.oauth_flow import DISCOVERY_PATH
from tests.support.upstream import (
    START_TIMEOUT,
    STOP_TIMEOUT,
    UPSTREAM_DIR,
    UpstreamError,
    ensure_node_modules,
    free_port,
)

STANDIN_SCRIPT = UPSTREAM_DIR / "keycloak-standin.mjs"
DEFAULT_REALMS = ("acme", "Customers")
REGISTRATION_PATH = "/clients-registrations/openid-connect"
SIBLING_PROVIDERS = ("default", "install", "saml2-entity-descriptor")


class KeycloakStandInError(UpstreamError):
    """The Keycloak stand-in could not be started (or was used before it was)."""


class KeycloakStandIn:
    """One ``node keycloak-standin.mjs`` process serving several realms.

    ``issuer_base`` defaults to the stand-in's own URL; each realm's issuer is
    ``{issuer_base}{path_prefix}/realms/{realm}``. Behind the gateway pass the gateway's public
    URL, because MCP clients require the metadata ``issuer`` to equal the URL they used.
    """

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._url: str | None = None
        self._issuer_base: str | None = None
        self._port: int | None = None
        self.realms: tuple[str, ...] = ()
        self.path_prefix = ""

    # ------------------------------------------------------------------ lifecycle

    def start(
        self,
        port: int | None = None,
        issuer_base: str | None = None,
        realms: Iterable[str] = DEFAULT_REALMS,
        path_prefix: str = "",
        test_endpoints: bool = True,
        *,
        root_discovery: bool = True,
        host: str = "127.0.0.1",
        timeout: float = START_TIMEOUT,
        extra_env: dict[str, str] | None = None,
    ) -> Self:
        """Start the stand-in and wait until it serves; returns self.

        ``port=None`` lets it pick a free port itself. ``path_prefix="/auth"`` imitates
        Keycloak before 17, which served everything under ``/auth``; ``root_discovery=False``
        Keycloak before 26.4, which has no RFC 8414 path-insertion documents.
        """
        if self._process is not None:
            raise KeycloakStandInError("Keycloak stand-in already started")
        realms = tuple(realms)
        path_prefix = path_prefix.rstrip("/")
        ensure_node_modules()
        node = shutil.which("node")
        if node is None:
            raise KeycloakStandInError(
                "node is not on PATH; install Node.js 20+ to run integration tests"
            )

        argv = [
            node,
            str(STANDIN_SCRIPT),
            f"--port={port if port is not None else 0}",
            f"--host={host}",
            f"--realms={','.join(realms)}",
        ]
        if issuer_base is not None:
            argv.append(f"--issuer-base={issuer_base}")
        if path_prefix:
            argv.append(f"--path-prefix={path_prefix}")
        if test_endpoints:
            argv.append("--test-endpoints")
        if not root_discovery:
            argv.append("--root-discovery=0")
        env = dict(os.environ)
        if extra_env:
            env.update(extra_env)

        # A file instead of pipes: nobody has to drain them, and the output is there for errors.
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix="dcr-keycloak-standin-", suffix=".log", delete=False
        )
        self._process = subprocess.Popen(
            argv,
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
        self._issuer_base = (issuer_base if issuer_base is not None else self._url).rstrip("/")
        self.realms = realms
        self.path_prefix = path_prefix
        return self

    def _wait_ready(self, timeout: float) -> str:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.output().splitlines():
                if line.startswith("READY "):
                    return line.split(" ", 1)[1].strip()
            if self._process.poll() is not None:
                raise KeycloakStandInError(
                    f"Keycloak stand-in exited with {self._process.returncode} before READY:\n"
                    f"{self.output()}"
                )
            time.sleep(0.02)
        raise KeycloakStandInError(
            f"Keycloak stand-in did not print READY within {timeout:.0f}s:\n{self.output()}"
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
        """Everything the stand-in printed so far (stdout and stderr), for error messages."""
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
        """The address the stand-in listens on, e.g. ``http://127.0.0.1:41234`` (no slash)."""
        if self._url is None:
            raise KeycloakStandInError("Keycloak stand-in is not started")
        return self._url

    @property
    def port(self) -> int:
        if self._port is None:
            raise KeycloakStandInError("Keycloak stand-in is not started")
        return self._port

    @property
    def issuer_base(self) -> str:
        """The issuer base it was started with (its own URL unless one was given)."""
        if self._issuer_base is None:
            raise KeycloakStandInError("Keycloak stand-in is not started")
        return self._issuer_base

    def realm_path(self, realm: str) -> str:
        """``{path_prefix}/realms/{realm}`` (no slash at the end)."""
        return f"{self.path_prefix}/realms/{realm}"

    def realm_url(self, realm: str) -> str:
        """The realm's base on the stand-in itself, e.g. ``http://127.0.0.1:41234/realms/acme``."""
        return self.url + self.realm_path(realm)

    def issuer(self, realm: str) -> str:
        """The realm's issuer: ``{issuer_base}{path_prefix}/realms/{realm}``."""
        return self.issuer_base + self.realm_path(realm)

    def registration_endpoint(self, realm: str) -> str:
        return self.realm_url(realm) + REGISTRATION_PATH

    # ------------------------------------------------------------------ test endpoints

    def _get_json(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.loads(response.read())

    @staticmethod
    def _clients_path(realm: str) -> str:
        return "/__test/clients?" + urllib.parse.urlencode({"realm": realm})

    def client_ids(self, realm: str) -> list[str]:
        """Ids of the clients the realm stores now (needs test endpoints)."""
        return list(self._get_json(self._clients_path(realm))["client_ids"])

    def client_count(self, realm: str) -> int:
        """How many clients the realm stores now (blocking; needs test endpoints)."""
        return int(self._get_json(self._clients_path(realm))["count"])

    async def aclient_count(self, realm: str, session: aiohttp.ClientSession | None = None) -> int:
        """Async :meth:`client_count`, for tests that must not block the event loop."""
        if session is None:
            async with aiohttp.ClientSession() as own:
                return await self.aclient_count(realm, own)
        async with session.get(self.url + self._clients_path(realm)) as response:
            response.raise_for_status()
            return int((await response.json())["count"])

    def requests(self, realm: str) -> list[dict[str, Any]]:
        """What reached the realm's endpoints where clients are used, in order (needs test
        endpoints): ``route``, ``method``, ``status``, ``client_id`` (the parameter),
        ``auth_scheme``, ``basic_user`` (HTTP Basic's user, decoded) and
        ``client_assertion`` (whether one was sent)."""
        query = urllib.parse.urlencode({"realm": realm})
        return list(self._get_json("/__test/requests?" + query)["requests"])

    def sibling_calls(self) -> dict[str, int]:
        """Requests answered by the sibling providers so far, by ``"<realm>/<provider>"``."""
        calls = self._get_json("/__test/siblings")["calls"]
        return {str(key): int(value) for key, value in calls.items()}

    async def asibling_calls(self, session: aiohttp.ClientSession | None = None) -> dict[str, int]:
        """Async :meth:`sibling_calls`."""
        if session is None:
            async with aiohttp.ClientSession() as own:
                return await self.asibling_calls(own)
        async with session.get(self.url + "/__test/siblings") as response:
            response.raise_for_status()
            calls = (await response.json())["calls"]
            return {str(key): int(value) for key, value in calls.items()}


# ---------------------------------------------------------------------- realm-aware OAuth flows


class _RealmDiscoverySession:
    """The part of :class:`aiohttp.ClientSession` that :mod:`tests.support.oauth_flow` uses.

    Requests for ``{origin}/.well-known/openid-configuration`` (where oauth_flow looks) go to
    ``discovery_url`` instead; everything else, origin checks included, is untouched.
    """

    def __init__(self, session: aiohttp.ClientSession, origin: URL, discovery_url: URL) -> None:
        self._session = session
        self._root_discovery = origin.with_path(DISCOVERY_PATH)
        self._discovery_url = discovery_url

    def request(self, method: str, url: URL | str, **kwargs: Any) -> Any:
        target = URL(url)
        if target.with_query(None).with_fragment(None) == self._root_discovery:
            target = self._discovery_url
        return self._session.request(method, target, **kwargs)


@asynccontextmanager
async def realm_session(
    realm_url: str,
    session: aiohttp.ClientSession | None = None,
    *,
    discovery_url: str | None = None,
) -> AsyncIterator[aiohttp.ClientSession]:
    """A session for oauth_flow's helpers with ``base_url=realm_url``.

    They then discover at ``discovery_url`` (default: ``{realm_url}/.well-known/
    openid-configuration``), and ``check_issuer=True`` compares the issuer with ``realm_url``
    itself, as an MCP client that was given the realm URL would. Usage::

        async with realm_session(standin.realm_url("acme")) as session:
            await authorization_code_flow(standin.realm_url("acme"), ..., session=session)
    """
    base = URL(realm_url.rstrip("/"))
    target = URL(discovery_url) if discovery_url else URL(str(base) + DISCOVERY_PATH)
    if session is None:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as own:
            yield cast(aiohttp.ClientSession, _RealmDiscoverySession(own, base.origin(), target))
        return
    yield cast(aiohttp.ClientSession, _RealmDiscoverySession(session, base.origin(), target))


# --------------------------------------------------------------------------- fixtures
# Module-scoped: every gateway of a test module shares one port, which the stand-in's
# issuers name.  A test module takes them with ``gateway_port = keycloak.gateway_port``
# and ``standin = keycloak.standin``.


@pytest.fixture(scope="module")
def gateway_port() -> int:
    """One port for every gateway of the module: the stand-in's issuers name it."""
    return free_port()


@pytest.fixture(scope="module")
def standin(gateway_port: int) -> Iterator[KeycloakStandIn]:
    server = KeycloakStandIn().start(issuer_base=f"http://127.0.0.1:{gateway_port}")
    try:
        yield server
    finally:
        server.stop()
