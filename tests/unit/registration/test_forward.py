"""Publishing the upstream's URLs on the gateway's public URL (RFC 7592 §3)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from gateway.registration.forward import parsed_public_url, public_url


def _gateway(upstream: str, public: str) -> Any:
    return SimpleNamespace(
        upstream=SimpleNamespace(base=URL(upstream)),
        settings=SimpleNamespace(public_url=URL(public)),
    )


BASES = [
    ("http://127.0.0.1:3000", "https://gw.example"),
    ("http://kc:8080/auth", "https://login.example/id"),
    ("http://kc:8080/auth/", "https://login.example/"),
    ("http://kc:8080/auth", "https://login.example"),
    ("http://127.0.0.1:3000", "http://127.0.0.1:3000/gw"),
]


@pytest.mark.parametrize(("upstream", "public"), BASES)
@pytest.mark.parametrize(
    "tail",
    [
        "/reg/abc-DEF_123~x",
        "/realms/r/clients-registrations/openid-connect/0f1e-2d3c",
        "/reg/a.b",
        "/reg/../x",
        "/reg/./x",
        "/reg//x",
        "/reg/x/",
        "/reg/x?y=1",
        "/reg/x?",
        "/reg/x#f",
        "/reg/%41",
        "/reg/%zz",
        "/reg/caf\u00e9",
        "/reg/a b",
        "",
        "/",
        "x/reg",
    ],
)
def test_the_shortcut_gives_what_parsing_gives(upstream: str, public: str, tail: str) -> None:
    gateway = _gateway(upstream, public)
    for base in (upstream, public):  # the upstream's URL, or already the gateway's
        url = base.rstrip("/") + tail
        assert public_url(gateway, url) == parsed_public_url(gateway, url)


@pytest.mark.parametrize(("upstream", "public"), BASES)
@given(tail=st.text(alphabet="/.-_~%?#aZ09:@ ", max_size=24))
def test_the_shortcut_agrees_with_parsing_for_any_tail(
    upstream: str, public: str, tail: str
) -> None:
    gateway = _gateway(upstream, public)
    for base in (upstream, public):
        url = base.rstrip("/") + tail
        assert public_url(gateway, url) == parsed_public_url(gateway, url)


def test_the_upstreams_prefix_is_removed_from_a_url_on_the_public_origin() -> None:
    # An upstream under /auth that honours X-Forwarded-Host names the gateway's host but
    # keeps its own prefix, which the gateway does not serve.
    gateway = _gateway("http://kc:8080/auth", "https://login.example")
    assert (
        public_url(gateway, "https://login.example/auth/reg/c1") == "https://login.example/reg/c1"
    )
    gateway = _gateway("http://kc:8080/auth", "https://login.example/id")
    assert public_url(gateway, "https://login.example/auth/reg/c1") == (
        "https://login.example/id/reg/c1"
    )


def test_an_upstream_client_uri_is_moved_to_the_public_url() -> None:
    gateway = _gateway("http://kc:8080/auth", "https://login.example/id")
    got = public_url(gateway, "http://kc:8080/auth/realms/r/clients-registrations/default/c1")
    assert got == "https://login.example/id/realms/r/clients-registrations/default/c1"


@pytest.mark.parametrize(
    "url",
    ["http://KC:8080/auth/reg/c", "http://kc:80800/auth/reg/c", "http://kc:8080/authx/reg/c"],
)
def test_urls_that_only_look_like_the_upstream_are_parsed(url: str) -> None:
    gateway = _gateway("http://kc:8080/auth", "https://login.example")
    assert public_url(gateway, url) == parsed_public_url(gateway, url)


@pytest.mark.parametrize("public", ["https://gw.example", "https://gw.example/id/"])
@given(tail=st.text(alphabet="/.-_~%?#aZ09:@ ", max_size=24))
def test_a_management_path_is_what_parsing_gives(public: str, tail: str) -> None:
    from gateway.registry import record

    gateway = _gateway("http://127.0.0.1:3000", public)
    uri = public.rstrip("/") + tail
    fast = record.management_path(gateway, uri)
    try:
        parsed = URL(uri).raw_path
    except ValueError:
        assert fast is None
        return
    base = URL(public).raw_path.rstrip("/")
    if base and parsed.startswith(base + "/"):
        parsed = parsed[len(base) :]
    assert fast == (parsed or None)
