"""``dcr-gateway run --event-loop``: asyncio's own loop, uvloop, or uvloop when installed."""

from __future__ import annotations

import pytest

from gateway.cli import loop as loops


def test_asyncio_is_asyncio() -> None:
    loop, name = loops.new_loop("asyncio")
    try:
        assert name == "asyncio"
        assert type(loop).__module__.startswith("asyncio")
    finally:
        loop.close()


def test_auto_and_uvloop_use_uvloop_when_installed() -> None:
    pytest.importorskip("uvloop")
    for choice in ("auto", "uvloop"):
        loop, name = loops.new_loop(choice)
        try:
            assert name == "uvloop"
            assert type(loop).__module__.startswith("uvloop")
        finally:
            loop.close()


def test_without_uvloop_auto_falls_back_and_uvloop_refuses(monkeypatch) -> None:
    def no_uvloop(name: str):
        raise ImportError(f"no {name} here")

    monkeypatch.setattr(loops.importlib, "import_module", no_uvloop)
    loop, name = loops.new_loop("auto")
    loop.close()
    assert name == "asyncio"
    with pytest.raises(loops.LoopUnavailable, match="dcr-gateway\\[uvloop\\]"):
        loops.new_loop("uvloop")
    with pytest.raises(ValueError, match="unknown event loop"):
        loops.new_loop("trio")
