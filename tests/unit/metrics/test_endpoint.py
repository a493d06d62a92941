"""Registry sizes at scrape time: read at most once per job interval, kept on failure."""

from __future__ import annotations

from types import SimpleNamespace

from gateway.metrics import Metrics
from gateway.metrics.endpoint import refresh_registry
from gateway.registry.entry import Status
from gateway.storage import StorageError


class Registry:
    def __init__(self, statuses: list[Status]) -> None:
        self.statuses = statuses
        self.reads = 0
        self.fail = False

    async def entries(self) -> list[SimpleNamespace]:
        self.reads += 1
        if self.fail:
            raise StorageError("down")
        return [SimpleNamespace(status=s) for s in self.statuses]


def gateway(registry: Registry, interval: float = 60.0) -> SimpleNamespace:
    settings = SimpleNamespace(registry=SimpleNamespace(job_interval=interval))
    return SimpleNamespace(metrics=Metrics(), settings=settings, registry=registry)


def counts(metrics: Metrics) -> dict[str, float]:
    return {
        status: metrics.registry_clients.labels(status)._value.get()
        for status in ("pending", "active", "rejected", "deleted")
    }


async def test_read_once_per_interval() -> None:
    registry = Registry([Status.ACTIVE, Status.ACTIVE, Status.PENDING])
    gw = gateway(registry)
    await refresh_registry(gw, now=1000.0)
    await refresh_registry(gw, now=1059.0)
    assert registry.reads == 1
    assert counts(gw.metrics) == {"pending": 1, "active": 2, "rejected": 0, "deleted": 0}
    registry.statuses = [Status.DELETED]
    await refresh_registry(gw, now=1060.0)
    assert registry.reads == 2
    assert counts(gw.metrics) == {"pending": 0, "active": 0, "rejected": 0, "deleted": 1}


async def test_a_failing_storage_keeps_the_last_reading() -> None:
    registry = Registry([Status.REJECTED])
    gw = gateway(registry, interval=0.0)
    await refresh_registry(gw, now=1.0)
    registry.fail = True
    await refresh_registry(gw, now=2.0)
    assert registry.reads == 2
    assert counts(gw.metrics)["rejected"] == 1
    assert gw.metrics.registry_read_at == 1.0


async def test_a_failing_storage_is_not_scanned_on_every_scrape() -> None:
    """A failed read counts as a try: scrapes within the interval do not scan a
    struggling storage again."""
    registry = Registry([Status.ACTIVE])
    registry.fail = True
    gw = gateway(registry)
    await refresh_registry(gw, now=1000.0)
    await refresh_registry(gw, now=1001.0)
    await refresh_registry(gw, now=1059.0)
    assert registry.reads == 1
    registry.fail = False
    await refresh_registry(gw, now=1060.0)
    assert registry.reads == 2 and counts(gw.metrics)["active"] == 1


async def test_concurrent_scrapes_read_once() -> None:
    import asyncio

    started = asyncio.Event()
    release = asyncio.Event()

    class Slow(Registry):
        async def entries(self) -> list[SimpleNamespace]:
            started.set()
            await release.wait()
            return await super().entries()

    registry = Slow([Status.PENDING])
    gw = gateway(registry, interval=0.0)
    first = asyncio.ensure_future(refresh_registry(gw, now=5.0))
    await started.wait()
    await refresh_registry(gw, now=5.0)  # another scrape meanwhile: served the last reading
    release.set()
    await first
    assert registry.reads == 1 and counts(gw.metrics)["pending"] == 1
