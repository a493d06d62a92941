"""Where the upstream's metadata is looked for, and how registration_endpoint maps to a path."""

from __future__ import annotations

import pytest
from yarl import URL

from gateway.upstream.discovery import metadata_urls, publish_metadata, registration_path


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


REGISTRATION = "https://gw.example/reg"


def test_publish_points_registration_at_the_gateway_and_leaves_the_rest() -> None:
    document = {"issuer": "https://gw.example", "registration_endpoint": "http://up:3000/reg"}
    published = publish_metadata(document, REGISTRATION, registration_open=True)
    assert published == {"issuer": "https://gw.example", "registration_endpoint": REGISTRATION}
    assert document["registration_endpoint"] == "http://up:3000/reg"  # not changed in place


@pytest.mark.parametrize("url", [REGISTRATION, None])
def test_publish_removes_registration_when_closed_or_unknown(url: str | None) -> None:
    document = {"issuer": "https://gw.example", "registration_endpoint": "http://up:3000/reg"}
    registration_open = url is None  # an unknown endpoint is removed even when open
    published = publish_metadata(document, url, registration_open=registration_open)
    assert "registration_endpoint" not in published


@pytest.mark.parametrize("registration_open", [True, False])
def test_publish_drops_the_mutual_tls_alias_of_registration(registration_open: bool) -> None:
    # RFC 8705 §5: a mutual-TLS client would prefer the alias, the upstream's own endpoint.
    document = {
        "registration_endpoint": "http://up:3000/reg",
        "mtls_endpoint_aliases": {
            "token_endpoint": "https://mtls.up/token",
            "registration_endpoint": "https://mtls.up/reg",
        },
    }
    published = publish_metadata(document, REGISTRATION, registration_open=registration_open)
    assert published["mtls_endpoint_aliases"] == {"token_endpoint": "https://mtls.up/token"}
