"""One serving process: listen, serve, and stop gracefully.

On ``SIGTERM`` or ``SIGINT`` the listener is closed at once (new connections are refused),
requests in flight get ``server.shutdown_timeout`` to finish, answered with
``Connection: close``, and only then are the connections closed (what is still running is
cancelled) and the resources closed, in the reverse order of opening
(:mod:`gateway.app`): the lifecycle job stopped, the upstream pool and the storage closed,
the audit sink last, so the event of the last request is written.

The requests in flight are counted here rather than left to aiohttp's own graceful
shutdown, because that one stops reading from every connection first: a registration
whose body is still arriving would then wait for bytes that are never read, and fail.
``SIGUSR1`` reopens a file audit sink (log rotation).  ``SIGHUP`` reloads the policy files
(:mod:`gateway.reload.watch` takes it over once the application has started); until then
it is logged and ignored (its default action would kill the process).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable

from aiohttp import web

from gateway.app import REUSE_PORT
from gateway.audit.logging import log
from gateway.config.settings import Settings
from gateway.http.inflight import IN_FLIGHT, InFlight
from gateway.state import GATEWAY

#: Signals that stop the process gracefully.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: After the drain, how long aiohttp may take to finish writing answers already returned
#: before it cancels what is left.
_CLOSE_GRACE = 1.0


def signal_actions(app: web.Application, stop: asyncio.Event) -> dict[int, Callable[[], None]]:
    """What each signal does in a serving process."""

    def reopen_audit() -> None:
        audit = app[GATEWAY].audit
        log().info("audit_reopened" if audit.reopen() else "audit_not_reopened", sink=audit.sink)

    def stop_serving() -> None:
        if not stop.is_set():
            log().info("stopping", reason="signal")
        stop.set()

    actions: dict[int, Callable[[], None]] = {sig: stop_serving for sig in STOP_SIGNALS}
    actions[signal.SIGUSR1] = reopen_audit
    # Until gateway.reload.watch installs the reload (start-up): not the default, a kill.
    actions[signal.SIGHUP] = lambda: log().info("sighup_ignored")
    return actions


async def serve(app: web.Application, settings: Settings, *, reuse_port: bool = False) -> None:
    """Start ``app`` on ``settings.listen`` and serve until a stop signal; raises what
    start-up raises (discovery failure, a port in use)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    actions = signal_actions(app, stop)
    for sig, action in actions.items():
        loop.add_signal_handler(sig, action)
    app[REUSE_PORT] = reuse_port
    inflight = app[IN_FLIGHT] = InFlight()  # counted by the server's handler
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=_CLOSE_GRACE
    )
    try:
        # Start-up (discovery may retry for a while) can be cut short by a stop signal.
        setup = asyncio.ensure_future(runner.setup())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({setup, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not setup.done():
            setup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await setup
            return
        stopped.cancel()
        setup.result()
        listen = settings.listen
        site = web.TCPSite(runner, listen.host, listen.port, reuse_port=reuse_port)
        await site.start()
        log().info("listening", host=listen.host, port=listen.port)
        await stop.wait()
        timeout = settings.server.shutdown_timeout
        log().info("shutting_down", in_flight=inflight.count, shutdown_timeout=timeout)
        await site.stop()  # new connections are refused from here on
        if not await inflight.drained(timeout):
            log().warning("shutdown_timeout", cancelled=inflight.count)
    finally:
        await runner.cleanup()
        for sig in actions:
            loop.remove_signal_handler(sig)
    log().info("stopped")
