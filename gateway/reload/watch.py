"""When policies reload: on SIGHUP, and with ``policy_reload.watch`` when a file changes.

The watcher polls each policy file's modification time, size and inode every
``policy_reload.interval`` (no dependency, and it works on every file system, network and
container mounts included, where change notifications often do not arrive).  A change
starts one reload; a reload that failed is not retried until a file changes again, so a
broken file is reported once, not every interval.  The stamp is taken before the files are
read, so a file still being written when it was read is read again on the next poll.

SIGHUP is the Unix habit (nginx, HAProxy): ``kill -HUP <pid>`` reloads.  One handler per
event loop serves every gateway application running in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from gateway.audit.logging import log
from gateway.reload.reloader import stamp
from gateway.state import GATEWAY, Gateway

#: Per event loop, what SIGHUP calls.
_HANGUP: dict[asyncio.AbstractEventLoop, list[Callable[[], None]]] = {}


def _on_hangup(loop: asyncio.AbstractEventLoop) -> None:
    for callback in list(_HANGUP.get(loop, ())):
        callback()


def _ignore_hangup() -> None:
    log().info("sighup_ignored", reason="shutting down")


def listen_for_hangup(callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback`` on SIGHUP; returns what stops it.  Where signals cannot be
    handled (not Unix, not the main thread) it does nothing, and says so in the log."""
    loop = asyncio.get_running_loop()
    callbacks = _HANGUP.get(loop)
    if callbacks is None:
        hangup = getattr(signal, "SIGHUP", None)
        try:
            if hangup is None:
                raise NotImplementedError("no SIGHUP on this platform")
            loop.add_signal_handler(hangup, _on_hangup, loop)
        except (NotImplementedError, RuntimeError, ValueError) as exc:
            log().warning("policy_reload_no_signal", reason=str(exc)[:200])
            return lambda: None
        callbacks = _HANGUP[loop] = []
    callbacks.append(callback)

    def stop() -> None:
        with contextlib.suppress(ValueError):
            callbacks.remove(callback)
        if not callbacks and _HANGUP.get(loop) is callbacks:
            del _HANGUP[loop]
            # Ignored from now on, not its default action (exit): the rest of a graceful
            # shutdown (storage, the audit sink) may still be running.
            with contextlib.suppress(Exception):
                loop.add_signal_handler(signal.SIGHUP, _ignore_hangup)

    return stop


async def watch(gateway: Gateway, interval: float) -> None:
    """Reload when a policy file changes; runs until cancelled."""
    reloader = gateway.reloader
    seen = stamp(reloader.status.files)
    while True:
        await asyncio.sleep(interval)
        files = reloader.status.files
        now = stamp(files)
        if now == seen:
            continue
        before = dict(seen)
        log().info("policy_files_changed", files=[p for p, s in now if before.get(p, 0) != s])
        try:
            await reloader.reload(gateway, "watch")
        except Exception:  # the watcher must outlive one bad reload
            log().exception("policy_watch_failed")
        # A successful reload may read other files (a token's policy file was added).
        seen = now if reloader.status.files == files else stamp(reloader.status.files)


async def policy_reload(app: web.Application) -> AsyncIterator[None]:
    """The start-up ``policy.loaded`` event, SIGHUP, and the watcher (``cleanup_ctx``)."""
    gateway = app[GATEWAY]
    gateway.reloader.announce(gateway)
    pending: set[asyncio.Task[object]] = set()

    def hangup() -> None:
        task = asyncio.get_running_loop().create_task(gateway.reloader.reload(gateway, "signal"))
        pending.add(task)
        task.add_done_callback(pending.discard)

    stop_listening = listen_for_hangup(hangup)
    settings = gateway.settings.policy_reload
    watcher = None
    if settings.watch:
        watcher = asyncio.get_running_loop().create_task(watch(gateway, settings.interval))
    try:
        yield
    finally:
        stop_listening()
        for task in [*pending, *([watcher] if watcher is not None else [])]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
