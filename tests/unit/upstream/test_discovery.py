"""Where the upstream's metadata is looked for, and how registration_endpoint maps to a path."""

from __future__ import annotations

import pytest
from yarl import URL

from gateway.upstream.discovery import metadata_urls, registration_path


@pytest.mark.parametrize(
    ("upstream", "expected"),
    [
        (
            "http://as.example:3000",
            [
                "http://as.example:3000/.well-known/oauth-authorization-server",
                "http://as.example:3000/.well-known/openid-configuration",
            ],
        ),
        (
            # RFC 8414 §3.1 inserts the well-known segment before the issuer's path;
            # OpenID Connect Discovery §4 appends it.
            "http://kc.example/realms/acme",
            [
                "http://kc.example/.well-known/oauth-authorization-server/realms/acme",
                "http://kc.example/realms/acme/.well-known/openid-configuration",
            ],
        ),
    ],
)
def test_metadata_urls(upstream: str, expected: list[str]) -> None:
    assert [str(u) for u in metadata_urls(URL(upstream))] == expected


@pytest.mark.parametrize(
    ("document", "upstream", "expected"),
    [
        ({"registration_endpoint": "http://gw.example/reg"}, "http://as:3000", "/reg"),
        (
            {"registration_endpoint": "https://gw.example/oauth/register"},
            "http://as",
            "/oauth/register",
        ),
        # The upstream's own path prefix is not part of the gateway's path space.
        (
            {
                "registration_endpoint": "http://kc/auth/realms/a/clients-registrations/openid-connect"
            },
            "http://kc/auth",
            "/realms/a/clients-registrations/openid-connect",
        ),
        ({"registration_endpoint": "http://gw.example"}, "http://as", "/"),
        ({}, "http://as", None),
        ({"registration_endpoint": ""}, "http://as", None),
        ({"registration_endpoint": 42}, "http://as", None),
        (["not", "a", "mapping"], "http://as", None),
    ],
)
def test_registration_path(document: object, upstream: str, expected: str | None) -> None:
    assert registration_path(document, URL(upstream)) == expected
