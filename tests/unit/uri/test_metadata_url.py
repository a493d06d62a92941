"""URL-valued client metadata read with the fetch rules (gateway.uri.parse.parse_metadata_url)."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gateway.rules import METADATA_URL_RULES, RULES
from gateway.uri.hosts import internal_host_problem, is_ip_address
from gateway.uri.parse import (
    MAX_LENGTH,
    RedirectURI,
    URIRefusal,
    parse_metadata_url,
    parse_redirect_uri,
)


def ok(raw: str) -> RedirectURI:
    parsed = parse_metadata_url(raw)
    assert isinstance(parsed, RedirectURI), parsed
    return parsed


def rule_of(raw: str) -> str:
    parsed = parse_metadata_url(raw)
    assert isinstance(parsed, URIRefusal), f"{raw!r} was accepted as {parsed}"
    return parsed.rule


# --- accepted ----------------------------------------------------------------------------

ACCEPTED = [
    # (raw, host, port, path, query)
    ("https://keys.example.com/jwks.json", "keys.example.com", None, "/jwks.json", None),
    ("HTTPS://KEYS.EXAMPLE.COM/jwks", "keys.example.com", None, "/jwks", None),
    ("https://keys.example.com:443/jwks", "keys.example.com", None, "/jwks", None),
    ("https://keys.example.com:8443/jwks", "keys.example.com", 8443, "/jwks", None),
    ("https://keys.example.com./jwks", "keys.example.com", None, "/jwks", None),
    ("https://keys.example.com", "keys.example.com", None, "/", None),
    ("https://keys.example.com?kid=1", "keys.example.com", None, "/", "kid=1"),
    (
        "https://cdn.example.com/a/%7Euser/logo.png",
        "cdn.example.com",
        None,
        "/a/~user/logo.png",
        None,
    ),
    ("https://cdn.example.com/logo%20v2.png", "cdn.example.com", None, "/logo%20v2.png", None),
    ("https://b\u00fccher.example.org/tos", "xn--bcher-kva.example.org", None, "/tos", None),
    ("https://xn--bcher-kva.example.org/tos", "xn--bcher-kva.example.org", None, "/tos", None),
    ("https://localhost.example.com/", "localhost.example.com", None, "/", None),
    ("https://internal.example.com/", "internal.example.com", None, "/", None),
    ("https://127.0.0.1.example.com/", "127.0.0.1.example.com", None, "/", None),
    ("https://a.b.c.d.example.org/x?next=https%3A%2F%2Fx", "a.b.c.d.example.org", None, "/x", None),
]


@pytest.mark.parametrize(
    ("raw", "host", "port", "path", "query"), ACCEPTED, ids=[a[0][:60] for a in ACCEPTED]
)
def test_good_urls(raw: str, host: str, port: int | None, path: str, query: str | None) -> None:
    parsed = ok(raw)
    assert (parsed.scheme, parsed.host, parsed.port, parsed.path) == ("https", host, port, path)
    if query is not None:
        assert parsed.query == query
    assert parsed.is_web and not parsed.is_loopback


def test_a_query_may_carry_an_encoded_url() -> None:
    assert ok("https://a.example.com/x?next=https%3A%2F%2Fy.example").query == (
        "next=https%3A%2F%2Fy.example"
    )


# --- refused -----------------------------------------------------------------------------

REFUSED = [
    # not_https
    ("http://keys.example.com/jwks", "metadata_url.not_https"),
    ("http://localhost/jwks", "metadata_url.not_https"),
    ("http://127.0.0.1:8080/sector.json", "metadata_url.not_https"),
    ("ftp://files.example.com/r.jwt", "metadata_url.not_https"),
    ("gopher://keys.example.com:6379/_FLUSHALL", "metadata_url.not_https"),
    ("dict://keys.example.com:11211/stats", "metadata_url.not_https"),
    ("ldap://ldap.example.com/o=keys", "metadata_url.not_https"),
    ("wss://app.example.com/socket", "metadata_url.not_https"),
    ("jar:https://example.com/k.jar!/jwks.json", "metadata_url.not_https"),
    ("com.example.app:/home", "metadata_url.not_https"),
    ("urn:ietf:params:oauth:jwk-thumbprint:sha-256:abc", "metadata_url.not_https"),
    # ip_address
    ("https://127.0.0.1:43010/sector.json", "metadata_url.ip_address"),
    ("https://169.254.169.254/latest/meta-data/", "metadata_url.ip_address"),
    ("https://10.0.0.1/", "metadata_url.ip_address"),
    ("https://203.0.113.7/", "metadata_url.ip_address"),
    ("https://0.0.0.0/", "metadata_url.ip_address"),
    ("https://127.0.0.1./", "metadata_url.ip_address"),
    ("https://2130706433/", "metadata_url.ip_address"),
    ("https://0x7f000001/", "metadata_url.ip_address"),
    ("https://0x7f.1/", "metadata_url.ip_address"),
    ("https://017700000001/", "metadata_url.ip_address"),
    ("https://0177.0.0.1/", "metadata_url.ip_address"),
    ("https://127.1/", "metadata_url.ip_address"),
    ("https://127.000.000.001/", "metadata_url.ip_address"),
    ("https://1.2.3.4.5/", "metadata_url.ip_address"),
    ("https://0/", "metadata_url.ip_address"),
    ("https://0x/", "metadata_url.ip_address"),
    ("https://\uff11\uff12\uff17.\uff10.\uff10.\uff11/", "metadata_url.ip_address"),
    ("https://[::1]/", "metadata_url.ip_address"),
    ("https://[0:0:0:0:0:0:0:1]/", "metadata_url.ip_address"),
    ("https://[::ffff:127.0.0.1]/", "metadata_url.ip_address"),
    ("https://[::ffff:7f00:1]/", "metadata_url.ip_address"),
    ("https://[::]/", "metadata_url.ip_address"),
    ("https://[fd00:ec2::254]/", "metadata_url.ip_address"),
    # internal_host
    ("https://localhost/", "metadata_url.internal_host"),
    ("https://LOCALHOST:8443/", "metadata_url.internal_host"),
    ("https://localhost./", "metadata_url.internal_host"),
    (
        "https://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/",
        "metadata_url.internal_host",
    ),
    ("https://keys.localhost/", "metadata_url.internal_host"),
    ("https://keycloak-db/", "metadata_url.internal_host"),
    ("https://metadata.google.internal/", "metadata_url.internal_host"),
    ("https://host.docker.internal/", "metadata_url.internal_host"),
    ("https://printer.local/", "metadata_url.internal_host"),
    ("https://x.svc.cluster.local/", "metadata_url.internal_host"),
    ("https://router.home.arpa/", "metadata_url.internal_host"),
    ("https://nas.lan/", "metadata_url.internal_host"),
    ("https://wiki.corp/", "metadata_url.internal_host"),
    ("https://keys.acme.test/", "metadata_url.internal_host"),
    ("https://x.invalid/", "metadata_url.internal_host"),
    ("https://x.onion/", "metadata_url.internal_host"),
    ("https://localhost.localdomain/", "metadata_url.internal_host"),
    # the redirect URI hygiene rules, with the metadata_url prefix
    ("https://user@keys.example.com/", "metadata_url.userinfo"),
    ("https://keys.example.com%40evil.example.org/", "metadata_url.userinfo"),
    ("https://keys.example.com%2540evil.example.org/", "metadata_url.userinfo"),
    ("https://keys.example.com/jwks#frag", "metadata_url.fragment"),
    ("https://keys.example.com\\jwks", "metadata_url.backslash"),
    ("https://keys.example.com/a%2Fb", "metadata_url.encoded_separator"),
    ("https://keys.example.com/a%5cb", "metadata_url.encoded_separator"),
    ("https://keys.example.com/a%252Fb", "metadata_url.encoded_separator"),
    ("https://keys.example.com/a/../b", "metadata_url.dot_segment"),
    ("https://keys.example.com/%2e%2e/b", "metadata_url.dot_segment"),
    ("https://keys.example.com/a/..;x/b", "metadata_url.dot_segment"),
    ("https://keys.example.com/a%00", "metadata_url.control_character"),
    ("https://keys.example.com/a%0d%0aX:%20y", "metadata_url.control_character"),
    ("https://keys.example.com/a b", "metadata_url.control_character"),
    ("https://keys.example.com/\t", "metadata_url.control_character"),
    ("https://keys.example.com/\u200b", "metadata_url.control_character"),
    ("https://local\u00adhost/", "metadata_url.control_character"),
    ("https://keys.example.com/" + "a" * MAX_LENGTH, "metadata_url.too_long"),
    ("jwks.json", "metadata_url.relative"),
    ("/jwks.json", "metadata_url.relative"),
    ("//keys.example.com/jwks", "metadata_url.relative"),
    ("", "metadata_url.relative"),
    ("javascript:alert(1)", "metadata_url.dangerous_scheme"),
    ("JaVaScRiPt:alert(1)", "metadata_url.dangerous_scheme"),
    ("data:text/html,<script>alert(1)</script>", "metadata_url.dangerous_scheme"),
    ("file:///etc/passwd", "metadata_url.dangerous_scheme"),
    ("vbscript:msgbox(1)", "metadata_url.dangerous_scheme"),
    ("blob:https://keys.example.com/1", "metadata_url.dangerous_scheme"),
    ("about:blank", "metadata_url.dangerous_scheme"),
    ("https://*.example.com/", "metadata_url.wildcard"),
    ("https://keys.example.com/*", "metadata_url.wildcard"),
    ("https://[::1", "metadata_url.malformed"),
    ("https://a..b/x", "metadata_url.malformed"),
    ("https://.example.com/", "metadata_url.malformed"),
    ("https://keys.example.com:99999/", "metadata_url.malformed"),
    ("https://keys.example.com:0/", "metadata_url.malformed"),
    ("https://keys.example.com:abc/", "metadata_url.malformed"),
    ("https://keys.example.com:443:80/", "metadata_url.malformed"),
    ("https://[fe80::1%25eth0]/", "metadata_url.malformed"),
    ("https://[v1.x]/", "metadata_url.malformed"),
    ("https://[127.0.0.1]/", "metadata_url.malformed"),
    ("https://local%68ost/", "metadata_url.malformed"),
    ("https://keys_example.com/", "metadata_url.malformed"),
    ("https://-keys.example.com/", "metadata_url.malformed"),
    ("https://keys.example.com/\u00e9", "metadata_url.malformed"),
    ("https://keys.example.com/%zz", "metadata_url.malformed"),
    ("https://evil.example.org\uff0fkeys.example.com/", "metadata_url.malformed"),
    ("https:///x", "metadata_url.no_host"),
    ("https://:443/x", "metadata_url.no_host"),
    ("https:keys.example.com/", "metadata_url.no_host"),
    ("https://stra\u00dfe.example.org/", "metadata_url.unstable_host"),
    ("https://\u03c3\u03bf\u03c6\u03bf\u03c2.example.org/", "metadata_url.unstable_host"),
    ("https://stra\u1e9ee.example.org/", "metadata_url.unstable_host"),
    ("https://x\u1c89.example.org/", "metadata_url.unstable_host"),
    ("https://a\u034fb.example.org/", "metadata_url.unstable_host"),
]


@pytest.mark.parametrize(("raw", "rule"), REFUSED, ids=[f"{r} {u[:50]!r}" for u, r in REFUSED])
def test_refused_with_the_right_rule(raw: str, rule: str) -> None:
    assert rule_of(raw) == rule


def test_every_parser_rule_of_the_registry_is_exercised() -> None:
    produced = {rule for _, rule in REFUSED}
    # host_not_allowed depends on the policy (client.fetched_url_hosts), not the parser
    expected = {f"metadata_url.{suffix}" for suffix in METADATA_URL_RULES} - {
        "metadata_url.host_not_allowed"
    }
    assert produced == expected
    assert produced <= set(RULES)


def test_a_refusal_names_the_url() -> None:
    refusal = parse_metadata_url("http://keys.example.com/jwks")
    assert isinstance(refusal, URIRefusal)
    assert "'http://keys.example.com/jwks'" in refusal.description


def test_the_description_escapes_control_characters() -> None:
    refusal = parse_metadata_url("https://keys.example.com/\r\nX-Injected: 1")
    assert isinstance(refusal, URIRefusal)
    assert "\r" not in refusal.description and "\n" not in refusal.description


# --- properties --------------------------------------------------------------------------

_URL_PIECES = st.sampled_from(
    [
        *"aZ09-._~:/?#[]@!$&'()*+,;=%\\ ",
        *("localhost", "127", "0x", "[::1]", "\u00df", "\u00fc", "%2e", "%2F", "%40", "%00"),
        *("..", "\u3002", "\uff0e", "\u200b", "xn--", ".local"),
    ]
)
_URLS = st.builds(
    lambda scheme, rest: scheme + rest,
    st.sampled_from(["https://", "http://", "HTTPS://", "https:", "", "javascript:", "ftp://"]),
    st.lists(_URL_PIECES, max_size=16).map("".join) | st.text(max_size=30),
)


@given(_URLS)
@example("https://keys.example.com/jwks.json")
@example("https://[::ffff:127.0.0.1]/")
def test_it_never_raises_and_accepts_only_public_https_names(raw: str) -> None:
    parsed = parse_metadata_url(raw)
    if isinstance(parsed, URIRefusal):
        assert parsed.rule in RULES
        assert parsed.rule.startswith("metadata_url.")
        return
    assert parsed.scheme == "https"
    assert parsed.host is not None
    assert not is_ip_address(parsed.host)
    assert internal_host_problem(parsed.host) is None


@given(_URLS)
@example("https://keys.example.com/jwks.json")
def test_it_is_stricter_than_the_redirect_uri_parser(raw: str) -> None:
    """Whatever parse_metadata_url accepts, parse_redirect_uri accepts with the same
    normal form; whatever parse_redirect_uri refuses, parse_metadata_url refuses."""
    strict = parse_metadata_url(raw)
    loose = parse_redirect_uri(raw)
    if isinstance(strict, RedirectURI):
        assert isinstance(loose, RedirectURI)
        assert loose.normalized() == strict.normalized()
    if isinstance(loose, URIRefusal):
        assert isinstance(strict, URIRefusal)
