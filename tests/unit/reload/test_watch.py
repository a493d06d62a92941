"""gateway.reload.watch: SIGHUP while the gateway runs, and after it stopped listening."""

from __future__ import annotations

import asyncio
import os
import signal

from gateway.reload.watch import listen_for_hangup


async def test_sighup_calls_every_listener() -> None:
    heard: list[str] = []
    stop_a = listen_for_hangup(lambda: heard.append("a"))
    stop_b = listen_for_hangup(lambda: heard.append("b"))
    try:
        os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.sleep(0.05)
        assert heard == ["a", "b"]
    finally:
        stop_a()
        stop_b()
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)


async def test_after_the_last_listener_sighup_is_ignored_not_fatal() -> None:
    """Stopping comes first in a graceful shutdown; the rest of it (storage, the audit
    sink) must not be cut short by a SIGHUP's default action, which ends the process."""
    loop = asyncio.get_running_loop()
    stop = listen_for_hangup(lambda: None)
    stop()
    try:
        assert signal.getsignal(signal.SIGHUP) is not signal.SIG_DFL
        os.kill(os.getpid(), signal.SIGHUP)  # this process survives it
        await asyncio.sleep(0.05)
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL
