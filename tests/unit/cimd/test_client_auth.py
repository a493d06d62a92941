"""The pure parts of gateway.cimd.client_auth: the bridged client's HTTP Basic credentials
(RFC 6749 §2.3.1), removing the assertion from a form body (every other byte kept), and
what a document's keys must be before a client is bridged."""

from __future__ import annotations

import base64
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.cimd.client_auth import check_keys, upstream_authorization, without_assertion
from gateway.errors import OAuthError

EC = {"kty": "EC", "crv": "P-256", "kid": "k"}
EC["x"] = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"
EC["y"] = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"


def test_basic_credentials_are_form_encoded_first() -> None:
    header = upstream_authorization("id:with/odd chars", "s3cr+t:/")
    scheme, _, value = header.partition(" ")
    user, _, password = base64.b64decode(value).decode().partition(":")
    assert scheme == "Basic"
    assert (unquote(user), unquote(password)) == ("id:with/odd chars", "s3cr+t:/")
    assert ":" not in user and ":" not in password


def test_the_assertion_parameters_are_removed_and_nothing_else() -> None:
    body = (
        b"grant_type=authorization_code&code=a%20b+c&client_assertion_type=urn%3Ax"
        b"&client_assertion=e.y.j&client_id=https%3A%2F%2Fa.example%2Fc.json&&x="
    )
    assert without_assertion(body) == (
        b"grant_type=authorization_code&code=a%20b+c&client_id=https%3A%2F%2Fa.example%2Fc.json&&x="
    )


def test_percent_encoded_parameter_names_are_removed_too() -> None:
    """``client%5Fassertion`` is ``client_assertion`` to a form parser upstream."""
    assert without_assertion(b"a=1&client%5Fassertion=e.y.j&client_assertion%5Ftype=t") == b"a=1"


_part = st.from_regex(r"[a-z_]{1,12}=[A-Za-z0-9%+._-]{0,12}", fullmatch=True)


@given(st.lists(_part, max_size=8))
def test_other_parameters_keep_their_bytes_and_order(parts: list[str]) -> None:
    kept = [
        p for p in parts if p.split("=")[0] not in ("client_assertion", "client_assertion_type")
    ]
    body = "&".join(parts).encode()
    assert without_assertion(body) == "&".join(kept).encode()


def test_no_body_stays_no_body() -> None:
    assert without_assertion(None) is None
    assert without_assertion(b"") == b""


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ({}, "exactly one"),
        ({"jwks": {"keys": [EC]}, "jwks_uri": "https://a.example/jwks"}, "exactly one"),
        ({"jwks_uri": ["https://a.example/jwks"]}, "not a string"),
        ({"jwks": {"keys": [{**EC, "d": "private"}]}}, "private"),
        ({"jwks": {"keys": []}}, "no signing key"),
    ],
)
def test_documents_whose_keys_cannot_work_are_refused(document: dict, words: str) -> None:
    with pytest.raises(OAuthError) as refused:
        check_keys(document)
    assert refused.value.rule == "cimd.jwks"
    assert words in refused.value.description


@pytest.mark.parametrize(
    "document", [{"jwks": {"keys": [EC]}}, {"jwks_uri": "https://a.example/jwks.json"}]
)
def test_usable_keys_pass(document: dict) -> None:
    assert check_keys(document) is None  # raises when refused


def test_raw_non_ascii_bytes_do_not_keep_the_assertion() -> None:
    """The assertion is found in a UTF-8 body however its other values are spelled, so it
    is removed from it too (not passed upstream beside the gateway's credentials)."""
    body = "state=é&client_assertion=e.y.j&client_assertion_type=t".encode()
    assert without_assertion(body) == "state=é".encode()
    assert without_assertion(b"a=\xff&client_assertion=x") == b"a=\xff"
