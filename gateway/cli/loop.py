"""Which asyncio event loop ``dcr-gateway run`` serves on: the standard one, or uvloop.

uvloop (libuv, in C) is an optional dependency (``pip install 'dcr-gateway[uvloop]'``).
``--event-loop asyncio`` (the default) never uses it, ``auto`` uses it when it is
installed, ``uvloop`` insists on it.  docs/performance.md has what it changes.
"""

from __future__ import annotations

import asyncio
import importlib
from types import ModuleType

CHOICES = ("auto", "asyncio", "uvloop")


class LoopUnavailable(RuntimeError):
    """``--event-loop uvloop`` without uvloop installed."""


def _uvloop() -> ModuleType | None:
    try:
        return importlib.import_module("uvloop")
    except ImportError:
        return None


def new_loop(choice: str) -> tuple[asyncio.AbstractEventLoop, str]:
    """A new event loop for ``choice`` (one of :data:`CHOICES`) and the name of what it is."""
    if choice not in CHOICES:
        raise ValueError(f"unknown event loop {choice!r}")
    uvloop = None if choice == "asyncio" else _uvloop()
    if uvloop is None:
        if choice == "uvloop":
            raise LoopUnavailable("uvloop is not installed: pip install 'dcr-gateway[uvloop]'")
        return asyncio.new_event_loop(), "asyncio"
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop, "uvloop"
