"""Every failed Redis operation is reported to ``on_error`` (the storage error counter)."""

from __future__ import annotations

import pytest

from gateway.storage import StorageError, open_storage
from tests.support.upstream import free_port


async def test_a_failed_operation_is_reported_once() -> None:
    failures: list[None] = []
    storage = open_storage(
        f"redis://127.0.0.1:{free_port()}/0", on_error=lambda: failures.append(None)
    )
    try:
        with pytest.raises(StorageError):
            await storage.get("key")
        with pytest.raises(StorageError):
            await storage.set("key", b"v")
    finally:
        await storage.close()
    assert len(failures) == 2


def test_memory_storage_takes_the_hook_and_never_fails() -> None:
    assert open_storage("memory://", on_error=lambda: None).uri == "memory://"
