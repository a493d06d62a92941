"""Pytest fixtures for tests that need the Keycloak stand-in.

Import the ones you use into a test module
(``from tests.support.keycloak_fixtures import keycloak_factory``); conftest files belong to the
gateway's tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import pytest

from tests.support.keycloak import DEFAULT_REALMS, KeycloakStandIn


class KeycloakFactory(Protocol):
    """Signature of the ``keycloak_factory`` fixture (same as ``KeycloakStandIn.start``)."""

    def __call__(
        self,
        port: int | None = None,
        issuer_base: str | None = None,
        realms: Iterable[str] = DEFAULT_REALMS,
        path_prefix: str = "",
        test_endpoints: bool = True,
        **kwargs: Any,
    ) -> KeycloakStandIn: ...


@pytest.fixture
def keycloak_factory() -> Iterator[KeycloakFactory]:
    """Start stand-ins with custom arguments (e.g. ``issuer_base=<gateway URL>``); stop them
    after the test."""
    standins: list[KeycloakStandIn] = []

    def start(
        port: int | None = None,
        issuer_base: str | None = None,
        realms: Iterable[str] = DEFAULT_REALMS,
        path_prefix: str = "",
        test_endpoints: bool = True,
        **kwargs: Any,
    ) -> KeycloakStandIn:
        standin = KeycloakStandIn()
        standins.append(standin)
        return standin.start(port, issuer_base, realms, path_prefix, test_endpoints, **kwargs)

    try:
        yield start
    finally:
        for standin in standins:
            standin.stop()
