"""``server.workers`` above 1: a parent process supervising worker processes.

Python serves one core per process, so several processes share the listening port with
``SO_REUSEPORT``: the kernel spreads new connections over them.  The parent does no HTTP
itself: it starts the workers (``dcr-gateway run --worker``, each loading the same config),
forwards ``SIGTERM``, ``SIGINT``, ``SIGHUP`` and ``SIGUSR1`` to every one of them, and exits
when they have exited.  A worker that exits on its own (a crash, a failed start-up) makes
the parent stop the others gracefully and exit non-zero: the whole set is then restarted
by whatever runs it (systemd, Kubernetes, Docker), rather than limping on with fewer
workers and nobody noticing.

Every worker must see the same state (rate limits, token uses, quotas, the client
registry), so several workers need shared storage; settings refuse ``memory://`` with
``server.workers`` above 1 (:func:`gateway.config.settings.workers_problem`).  The lifecycle
job runs under a storage lock, so it runs in one worker at a time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from gateway.audit.logging import log

#: Signals passed on to every worker.
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)
#: After a stop signal, how much longer than the workers' own shutdown timeout the parent
#: waits before it kills what is left.
KILL_GRACE = 10.0
_POLL = 0.1


def _ignore_until_serving() -> None:
    """In a new worker, before it runs the gateway: SIGHUP and SIGUSR1 ignored (inherited
    across ``exec``) until the worker installs its own handlers, so that one forwarded
    while the worker is still starting does not kill it (their default action).  A reload
    it misses so is no loss: it reads the policy files as they are when it starts."""
    for sig in (signal.SIGHUP, signal.SIGUSR1):
        signal.signal(sig, signal.SIG_IGN)


def worker_command(config: Path, event_loop: str = "asyncio") -> list[str]:
    """How a worker is started: this interpreter, the gateway's CLI, ``--worker``, on the
    parent's ``--event-loop``."""
    return [
        sys.executable,
        "-m",
        "gateway",
        "run",
        "-c",
        str(config),
        "--worker",
        "--event-loop",
        event_loop,
    ]


class Supervisor:
    """Starts ``count`` workers with ``command`` and waits for them (see the module)."""

    def __init__(self, command: Sequence[str], count: int, shutdown_timeout: float) -> None:
        self.command = list(command)
        self.count = count
        self.shutdown_timeout = shutdown_timeout
        self.workers: list[subprocess.Popen[bytes]] = []
        self._stop_deadline: float | None = None

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self._begin_stop()
        for worker in self.workers:
            if worker.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.send_signal(signum)

    def _begin_stop(self) -> None:
        if self._stop_deadline is None:
            self._stop_deadline = time.monotonic() + self.shutdown_timeout + KILL_GRACE

    def run(self) -> int:
        """Start the workers, supervise them, return the exit code for the parent."""
        previous = {sig: signal.signal(sig, self._forward) for sig in FORWARDED}
        try:
            for index in range(self.count):
                if self._stop_deadline is not None:
                    break
                # The command is this interpreter and the gateway's own CLI: no input reaches it.
                worker = subprocess.Popen(  # noqa: S603
                    self.command, stdin=subprocess.DEVNULL, preexec_fn=_ignore_until_serving
                )
                self.workers.append(worker)
                log().info("worker_started", worker=index, pid=worker.pid)
            return self._wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._kill_all()

    def _wait(self) -> int:
        """Until every worker has exited (or the stop deadline passed): the first
        non-zero status, or 1 when a worker exited unasked, else 0."""
        code = 0
        exited: set[int] = set()
        while len(exited) < len(self.workers):
            for index, worker in enumerate(self.workers):
                status = worker.poll()
                if status is None or index in exited:
                    continue
                exited.add(index)
                log().info("worker_exited", worker=index, pid=worker.pid, status=status)
                if self._stop_deadline is not None and -status in (signal.SIGTERM, signal.SIGINT):
                    status = 0  # asked to stop before it could install its own handlers
                if status != 0 and code == 0:
                    code = status if status > 0 else 1
                if self._stop_deadline is None:
                    # Exited without being asked: stop the others, exit non-zero.
                    log().error("worker_died", worker=index, pid=worker.pid, status=status)
                    code = code or 1
                    self._forward(signal.SIGTERM, None)
            if len(exited) == len(self.workers):
                break
            if self._stop_deadline is not None and time.monotonic() > self._stop_deadline:
                log().error("workers_killed", reason="shutdown took too long")
                self._kill_all()
                return code or 1
            time.sleep(_POLL)
        return code

    def _kill_all(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()


def supervise(
    config: Path, count: int, shutdown_timeout: float, event_loop: str = "asyncio"
) -> int:
    """Run ``count`` workers of the gateway configured by ``config``."""
    log().info("supervising", workers=count, pid=os.getpid())
    return Supervisor(worker_command(config, event_loop), count, shutdown_timeout).run()
