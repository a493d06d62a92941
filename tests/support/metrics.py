"""Scraping ``/-/metrics`` and reading it with prometheus_client's own parser."""

from __future__ import annotations

from collections.abc import Iterator

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample: (sample name, sorted labels) -> value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for sample in samples(text)
    }


def samples(text: str) -> Iterator[Sample]:
    for family in text_string_to_metric_families(text):
        yield from family.samples


def value(scraped: dict, name: str, **labels: str) -> float | None:
    return scraped.get((name, tuple(sorted(labels.items()))))


def nonzero(scraped: dict, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of ``name`` that are not 0, by their labels."""
    return {labels: v for (n, labels), v in scraped.items() if n == name and v}


async def scrape(session: aiohttp.ClientSession, base_url: str, **kwargs: object) -> str:
    async with session.get(base_url + "/-/metrics", **kwargs) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return await response.text()
