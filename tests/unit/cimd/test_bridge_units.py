"""The pure parts of gateway.cimd.bridge: rewriting ``client_id`` (only the parameters that
are the URL, every other byte as it came), the redirect URI comparison (exact, but for the
port of a loopback URI, RFC 8252 §7.3), the metadata a bridged client is registered with,
and the mapping kept in storage."""

from __future__ import annotations

import hashlib
from urllib.parse import quote

import pytest
from aiohttp.test_utils import make_mocked_request

from gateway.cimd.bridge import (
    Mapping,
    _check_redirect_uri,
    _redirect_uris,
    _replace_parameter,
    _same_redirect,
    document_digest,
    is_url_client_id,
    mapping_key,
    rewrite,
)
from gateway.cimd.provision import bridged_metadata
from gateway.errors import OAuthError

URL = "https://mcp-client.example.com:8443/oauth/client.json"
ENCODED = quote(URL, safe="")
BRIDGED = "s3AnFB8g-fPSd_gkcR"


# --------------------------------------------------------------------------- rewriting


def test_only_the_client_id_parameter_is_replaced() -> None:
    """Every other parameter keeps its exact bytes: order, encoding (``%20`` and ``+``),
    empty values and empty parts."""
    query = (
        f"response_type=code&client_id={ENCODED}&state=a%20b+c&scope=openid+profile"
        "&redirect_uri=http%3A%2F%2F127.0.0.1%3A5%2Fcb&empty=&&flag"
    )
    out = _replace_parameter(query, URL, BRIDGED)
    assert out == query.replace(f"client_id={ENCODED}", f"client_id={BRIDGED}")


def test_every_repeated_client_id_that_is_the_url_is_replaced() -> None:
    """A repeated ``client_id=<url>`` is replaced each time, so the upstream never sees the
    URL; a ``client_id`` that is something else is left alone."""
    query = f"client_id={ENCODED}&x=1&client_id={ENCODED}&client_id=other"
    assert _replace_parameter(query, URL, BRIDGED) == (
        f"client_id={BRIDGED}&x=1&client_id={BRIDGED}&client_id=other"
    )


@pytest.mark.parametrize(
    "part",
    [
        f"client%5Fid={ENCODED}",  # a percent-encoded key
        f"client%5fid={ENCODED}",
        f"client_id={ENCODED.lower()}",  # lower-case escapes
        f"client_id={URL}",  # the URL raw (its ':' and '/' need no escape in a query)
        "client_id=" + ENCODED.replace("%2F", "/"),
    ],
)
def test_any_encoding_of_the_parameter_is_recognised(part: str) -> None:
    """Whatever the encoding of the key or the value, a parameter that decodes to
    ``client_id=<url>`` is the one replaced (the upstream would decode it the same way)."""
    assert _replace_parameter(f"a=1&{part}&b=2", URL, BRIDGED) == f"a=1&client_id={BRIDGED}&b=2"


def test_nothing_to_replace_is_none() -> None:
    """No ``client_id=<url>``: ``None``, so the caller keeps the original untouched."""
    assert _replace_parameter("a=1&client_id=other", URL, BRIDGED) is None
    assert _replace_parameter("", URL, BRIDGED) is None
    assert _replace_parameter(f"client_ids={ENCODED}", URL, BRIDGED) is None
    assert _replace_parameter(f"x={ENCODED}", URL, BRIDGED) is None


def test_the_bridged_id_is_percent_encoded() -> None:
    """A bridged client id with reserved characters goes out encoded, never splitting the
    parameter."""
    out = _replace_parameter(f"client_id={ENCODED}", URL, "a/b+c=d&e")
    assert out == "client_id=a%2Fb%2Bc%3Dd%26e"


def test_rewrite_changes_the_query_and_keeps_the_path() -> None:
    """An authorization request: the target's query is rewritten, the raw path (with its
    own encoding) kept; a body without the URL is returned as it came."""
    request = make_mocked_request("GET", f"/a%2Fb/auth?client_id={ENCODED}&state=x%2By")
    rel, body = rewrite(request, None, URL, BRIDGED)
    assert rel.raw_path == "/a%2Fb/auth"
    assert rel.raw_query_string == f"client_id={BRIDGED}&state=x%2By"
    assert body is None


def test_rewrite_changes_the_form_body_byte_for_byte() -> None:
    """A token request: the body's ``client_id`` is replaced, every other byte kept; the
    target without a client_id is kept as it came."""
    form = (
        f"grant_type=authorization_code&code=abc%2Bdef&client_id={ENCODED}"
        "&code_verifier=v+v&redirect_uri=http%3A%2F%2F127.0.0.1%3A5%2Fcb"
    ).encode()
    request = make_mocked_request("POST", "/token?x=1")
    rel, body = rewrite(request, form, URL, BRIDGED)
    assert str(rel) == "/token?x=1"
    assert body == form.replace(f"client_id={ENCODED}".encode(), f"client_id={BRIDGED}".encode())


def test_rewrite_leaves_a_body_without_the_url_alone() -> None:
    """A body naming no ``client_id=<url>`` is returned as the same bytes."""
    request = make_mocked_request("POST", "/token")
    body = b"grant_type=refresh_token&refresh_token=a%2Bb"
    assert rewrite(request, body, URL, BRIDGED)[1] is body


# --------------------------------------------------------------------------- redirect URIs


@pytest.mark.parametrize(
    ("requested", "registered", "same"),
    [
        ("https://app.example.com/cb", "https://app.example.com/cb", True),
        # A loopback URI: any port (RFC 8252 §7.3), with or without one in the document.
        ("http://127.0.0.1:45678/callback", "http://127.0.0.1/callback", True),
        ("http://127.0.0.1:1/callback", "http://127.0.0.1:33418/callback", True),
        ("http://[::1]:5000/cb", "http://[::1]/cb", True),
        ("http://localhost:5000/cb", "http://localhost/cb", True),
        # ... but the same host, path and query.
        ("http://127.0.0.1:45678/other", "http://127.0.0.1/callback", False),
        ("http://localhost:45678/callback", "http://127.0.0.1/callback", False),
        ("http://127.0.0.1:45678/callback?x=1", "http://127.0.0.1/callback", False),
        ("http://127.0.0.1:45678/callback/", "http://127.0.0.1/callback", False),
        ("https://127.0.0.1:45678/callback", "http://127.0.0.1/callback", False),
        # Not loopback: exactly, port included.
        ("https://app.example.com:444/cb", "https://app.example.com/cb", False),
        ("https://app.example.com/cb/", "https://app.example.com/cb", False),
        ("https://evil.example.com/cb", "http://127.0.0.1/cb", False),
        ("http://127.0.0.1:5/cb", "https://app.example.com/cb", False),
        # What does not parse matches nothing (but itself, exactly).
        ("http://127.0.0.1:5/cb#x", "http://127.0.0.1/cb", False),
        ("not a uri", "http://127.0.0.1/cb", False),
    ],
)
def test_same_redirect(requested: str, registered: str, same: bool) -> None:
    """The request's redirect URI against one of the document's."""
    assert _same_redirect(requested, registered) is same


def _auth(query: str, body: bytes | None = None) -> list[str]:
    """The redirect URIs an authorization request names (query and form body)."""
    return _redirect_uris(make_mocked_request("GET", "/auth?" + query), body)


def test_the_requested_redirect_uri_must_be_one_of_the_documents() -> None:
    """One requested ``redirect_uri``, matching one of the document's; none is fine only
    when the document has exactly one; two are refused."""
    document = {"redirect_uris": ["http://127.0.0.1/callback", "https://app.example.com/cb"]}
    cb = quote("http://127.0.0.1:5555/callback", safe="")
    _check_redirect_uri(_auth(f"redirect_uri={cb}"), document)
    _check_redirect_uri(_auth("x=1"), {"redirect_uris": ["https://app.example.com/cb"]})
    for query in (
        "x=1",
        f"redirect_uri={cb}&redirect_uri={cb}",
        "redirect_uri=https%3A%2F%2Fe.example%2F",
    ):
        with pytest.raises(OAuthError) as refused:
            _check_redirect_uri(_auth(query), document)
        assert refused.value.rule == "cimd.redirect_uri_mismatch"


def test_a_posted_redirect_uri_is_checked_too() -> None:
    """An authorization request posted as a form (OIDC Core §3.1.2.1) names its
    ``redirect_uri`` in the body: a foreign one there is refused, a valid one accepted."""
    document = {"redirect_uris": ["http://127.0.0.1/callback", "https://app.example.com/cb"]}
    _check_redirect_uri(_auth("x=1", b"redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb"), document)
    with pytest.raises(OAuthError) as refused:
        _check_redirect_uri(_auth("x=1", b"redirect_uri=https%3A%2F%2Fevil.example%2Fcb"), document)
    assert refused.value.rule == "cimd.redirect_uri_mismatch"


# --------------------------------------------------------------------------- metadata


def test_a_loopback_only_document_is_registered_as_a_native_client() -> None:
    """Loopback redirect URIs only and no ``application_type``: registered ``native`` (so
    the upstream lets the port vary); the judged metadata itself is not changed."""
    judged = {"redirect_uris": ["http://127.0.0.1/callback", "http://[::1]/callback"]}
    out = bridged_metadata(judged)
    assert out["application_type"] == "native"
    assert "application_type" not in judged


@pytest.mark.parametrize(
    "judged",
    [
        {"redirect_uris": ["http://127.0.0.1/callback", "https://app.example.com/cb"]},
        {"redirect_uris": ["http://127.0.0.1/callback"], "application_type": "web"},
        {"redirect_uris": []},
        {"grant_types": ["client_credentials"]},
    ],
)
def test_other_documents_are_registered_as_they_are(judged: dict) -> None:
    """A web redirect URI, an ``application_type`` of the document's own, or no redirect
    URIs: the metadata is registered as judged."""
    assert bridged_metadata(judged) == judged


# --------------------------------------------------------------------------- mapping


def test_url_client_ids() -> None:
    """What counts as a metadata document URL (http too, so that it can be refused)."""
    assert is_url_client_id(URL)
    assert is_url_client_id("HTTPS://claude.ai/x")
    assert is_url_client_id("http://claude.ai/x")
    assert not is_url_client_id("s3AnFB8gfPSdgkcR")
    assert not is_url_client_id("https:/claude.ai")
    assert not is_url_client_id("urn:https://claude.ai/x")


def test_mapping_keys_and_records() -> None:
    """The storage key is per tenant and per URL (its SHA-256); a mapping reads back as
    written, and garbage reads as no mapping."""
    digest = hashlib.sha256(URL.encode()).hexdigest()
    assert mapping_key(None, URL) == f"cimd:map::{digest}"
    assert mapping_key("acme", URL) == f"cimd:map:acme:{digest}"
    assert mapping_key(None, URL + "x") != mapping_key(None, URL)
    mapping = Mapping(BRIDGED, "d" * 64, 1234.5)
    assert Mapping.from_bytes(mapping.to_bytes()) == mapping
    for raw in (None, b"", b"not json", b"[]", b'{"client_id": "x"}'):
        assert Mapping.from_bytes(raw) is None


def test_the_document_digest_ignores_key_order_only() -> None:
    """A document re-serialised in another key order is the same version; any change of
    value is another."""
    a = {"client_id": URL, "client_name": "A", "redirect_uris": ["x"]}
    b = {"redirect_uris": ["x"], "client_name": "A", "client_id": URL}
    assert document_digest(a) == document_digest(b)
    assert document_digest(a) != document_digest({**a, "client_name": "B"})
    assert document_digest(a) != document_digest({**a, "redirect_uris": ["x", "y"]})


def test_every_fetch_failure_is_a_member_of_the_cimd_fetch_family() -> None:
    """The fetcher's failure kinds become ``cimd.fetch.<kind>`` rule ids (one documented
    family, audited with the kind), all 401 ``invalid_client`` on the wire."""
    from gateway import rules
    from gateway.cimd.fetch import RULES

    kinds = [rule for rule in RULES if rule.startswith("cimd.fetch.")]
    assert kinds, RULES
    for rule_id in kinds:
        error = rules.CIMD_FETCH.refuse_as(rule_id, "why")
        assert (error.rule, error.status, error.error) == (rule_id, 401, "invalid_client")
    assert rules.CIMD_FETCH.id == "cimd.fetch.<kind>"


def test_a_body_with_raw_utf8_is_rewritten_too() -> None:
    """Client ids are read from a UTF-8 body (registry.use); so they are rewritten in one."""
    body = f"state=é&client_id={ENCODED}".encode()
    request = make_mocked_request("POST", "/token")
    _, rewritten = rewrite(request, body, URL, BRIDGED)
    assert rewritten == f"state=é&client_id={BRIDGED}".encode()
