"""Unit tests for gateway.http.forwarding: which headers cross the proxy, and who the client is."""

from __future__ import annotations

import ipaddress
import re

import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from gateway.http.forwarding import (
    HOP_BY_HOP,
    Caller,
    TrustedProxies,
    downstream_response_headers,
    upstream_request_headers,
)

PUBLIC = URL("https://gw.example")
PUBLIC_WITH_PORT = URL("http://127.0.0.1:8080")
PEER = "198.51.100.7"
PROXY = "10.0.0.2"


def headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


def forward(
    incoming: CIMultiDictProxy[str],
    *,
    peer: str | None = PEER,
    trusted: bool = False,
    public_url: URL = PUBLIC,
    preserve_host: bool = False,
) -> CIMultiDict[str]:
    caller = Caller("rid-1", None, "rid-1", peer, peer, trusted)
    return upstream_request_headers(
        incoming, caller, public_url=public_url, preserve_host=preserve_host
    )


def networks(*cidrs: str) -> TrustedProxies:
    return TrustedProxies(ipaddress.ip_network(c) for c in cidrs)


# --- request headers: what is removed ------------------------------------------------------


@pytest.mark.parametrize("name", sorted(HOP_BY_HOP), ids=sorted(HOP_BY_HOP))
@pytest.mark.parametrize("trusted", [False, True], ids=["untrusted", "trusted"])
def test_hop_by_hop_request_headers_are_removed(name: str, trusted: bool) -> None:
    incoming = headers((name.title(), "x"), ("Accept", "application/json"))
    out = forward(incoming, trusted=trusted, peer=PROXY if trusted else PEER)
    assert name not in out
    assert out["Accept"] == "application/json"


def test_hop_by_hop_set_is_rfc9110() -> None:
    assert (
        frozenset(
            {
                "connection",
                "proxy-connection",
                "keep-alive",
                "te",
                "trailer",
                "transfer-encoding",
                "upgrade",
                "proxy-authenticate",
                "proxy-authorization",
            }
        )
        == HOP_BY_HOP
    )


@pytest.mark.parametrize(
    "connection",
    [
        "X-Secret, close",
        "x-secret",
        " close ,  X-SECRET ,",
    ],
    ids=["listed", "lower-case", "spaces-and-empty-tokens"],
)
def test_headers_named_in_connection_are_removed(connection: str) -> None:
    incoming = headers(
        ("Connection", connection), ("X-Secret", "s"), ("X-Kept", "k"), ("Content-Type", "a/b")
    )
    out = forward(incoming)
    assert "X-Secret" not in out
    assert "Connection" not in out
    assert out["X-Kept"] == "k"
    assert out["Content-Type"] == "a/b"


def test_headers_named_in_any_connection_header_are_removed() -> None:
    incoming = headers(
        ("Connection", "X-One"), ("Connection", "X-Two"), ("X-One", "1"), ("X-Two", "2")
    )
    out = forward(incoming)
    assert "X-One" not in out
    assert "X-Two" not in out


@pytest.mark.parametrize(
    "name",
    ["X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override", "x-http-method-override"],
    ids=["x-http-method-override", "x-http-method", "x-method-override", "lower-case"],
)
@pytest.mark.parametrize("trusted", [False, True], ids=["untrusted", "trusted"])
def test_method_override_headers_are_removed(name: str, trusted: bool) -> None:
    out = forward(headers((name, "DELETE")), trusted=trusted)
    assert name not in out


@pytest.mark.parametrize(
    ("name", "value"),
    [("Content-Length", "999"), ("X-Request-ID", "client-chosen"), ("Host", "evil.example")],
    ids=["content-length", "x-request-id", "host"],
)
def test_replaced_request_headers_do_not_pass(name: str, value: str) -> None:
    out = forward(headers((name, value)))
    assert out.getall(name, []) != [value]
    assert value not in out.values()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Authorization", "Bearer initial-access-token"),
        ("Content-Type", "application/json"),
        ("User-Agent", "mcp-client/1.0"),
        ("Accept", "application/json"),
    ],
    ids=["authorization", "content-type", "user-agent", "accept"],
)
def test_end_to_end_headers_pass(name: str, value: str) -> None:
    assert forward(headers((name, value)))[name] == value


def test_repeated_end_to_end_headers_pass_one_by_one() -> None:
    out = forward(headers(("Accept-Language", "en"), ("Accept-Language", "de")))
    assert out.getall("Accept-Language") == ["en", "de"]


# --- request headers: forwarding headers ---------------------------------------------------


SPOOFED = (
    ("Host", "evil.example"),
    ("X-Forwarded-For", "6.6.6.6"),
    ("X-Forwarded-Host", "evil.example"),
    ("X-Forwarded-Proto", "http"),
    ("X-Forwarded-Port", "1234"),
    ("X-Forwarded-Prefix", "/evil"),
    ("X-Real-IP", "6.6.6.6"),
    ("Forwarded", "for=6.6.6.6;host=evil.example;proto=http"),
)


def test_untrusted_peer_forwarding_headers_are_replaced_from_public_url() -> None:
    out = forward(headers(*SPOOFED), trusted=False)
    assert dict(out) == {
        "X-Forwarded-For": PEER,
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "gw.example",
        "X-Forwarded-Port": "443",
        "Forwarded": f"for={PEER};host=gw.example;proto=https",
        "X-Request-ID": "rid-1",
    }
    assert len(out) == 6  # nothing left over from the client, once each


@pytest.mark.parametrize(
    ("public_url", "host", "proto", "port"),
    [
        (URL("https://gw.example"), "gw.example", "https", "443"),
        (URL("http://gw.example"), "gw.example", "http", "80"),
        (URL("http://127.0.0.1:8080"), "127.0.0.1:8080", "http", "8080"),
        (URL("https://gw.example:8443/base/"), "gw.example:8443", "https", "8443"),
        (URL("http://[2001:db8::1]:8080"), "[2001:db8::1]:8080", "http", "8080"),
    ],
    ids=["https-default-port", "http-default-port", "ip-and-port", "path", "ipv6"],
)
def test_x_forwarded_values_come_from_public_url(
    public_url: URL, host: str, proto: str, port: str
) -> None:
    out = forward(headers(("Host", "evil.example")), public_url=public_url)
    assert out["X-Forwarded-Host"] == host
    assert out["X-Forwarded-Proto"] == proto
    assert out["X-Forwarded-Port"] == port


@pytest.mark.parametrize(
    ("peer", "xff", "forwarded_for"),
    [
        ("198.51.100.7", "198.51.100.7", "for=198.51.100.7"),
        ("2001:db8::7", "2001:db8::7", 'for="[2001:db8::7]"'),
        (None, "unknown", "for=unknown"),
    ],
    ids=["ipv4", "ipv6-quoted", "no-peer"],
)
def test_forwarded_for_names_the_peer(peer: str | None, xff: str, forwarded_for: str) -> None:
    out = forward(headers(), peer=peer)
    assert out["X-Forwarded-For"] == xff
    assert out["Forwarded"] == f"{forwarded_for};host=gw.example;proto=https"


def test_forwarded_host_with_port_is_quoted() -> None:
    out = forward(headers(), public_url=PUBLIC_WITH_PORT)
    assert out["Forwarded"] == f'for={PEER};host="127.0.0.1:8080";proto=http'


def test_trusted_peer_forwarding_headers_are_kept_and_appended_to() -> None:
    incoming = headers(
        ("X-Forwarded-For", "203.0.113.9"),
        ("X-Forwarded-Host", "public.example"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Port", "8443"),
        ("Forwarded", "for=203.0.113.9;host=public.example;proto=https"),
        ("X-Real-IP", "203.0.113.9"),
    )
    out = forward(incoming, peer=PROXY, trusted=True)
    assert out["X-Forwarded-For"] == f"203.0.113.9, {PROXY}"
    assert out["X-Forwarded-Host"] == "public.example"
    assert out["X-Forwarded-Proto"] == "https"
    assert out["X-Forwarded-Port"] == "8443"
    assert out["Forwarded"] == (
        f"for=203.0.113.9;host=public.example;proto=https, for={PROXY};host=gw.example;proto=https"
    )
    assert out["X-Real-IP"] == "203.0.113.9"
    assert out.getall("X-Forwarded-For") == [f"203.0.113.9, {PROXY}"]


def test_trusted_peer_without_forwarding_headers_gets_public_url_values() -> None:
    out = forward(headers(), peer=PROXY, trusted=True)
    assert out["X-Forwarded-For"] == PROXY
    assert out["X-Forwarded-Host"] == "gw.example"
    assert out["X-Forwarded-Proto"] == "https"
    assert out["X-Forwarded-Port"] == "443"
    assert out["Forwarded"] == f"for={PROXY};host=gw.example;proto=https"


def test_trusted_peer_with_several_x_forwarded_for_lines_keeps_them_all() -> None:
    incoming = headers(
        ("X-Forwarded-For", "6.6.6.6"),
        ("X-Forwarded-For", "203.0.113.9"),
        ("Forwarded", "for=6.6.6.6"),
        ("Forwarded", "for=203.0.113.9"),
    )
    out = forward(incoming, peer=PROXY, trusted=True)
    assert out.getall("X-Forwarded-For") == [f"6.6.6.6, 203.0.113.9, {PROXY}"]
    assert out.getall("Forwarded") == [
        f"for=6.6.6.6, for=203.0.113.9, for={PROXY};host=gw.example;proto=https"
    ]


@pytest.mark.parametrize(
    ("preserve_host", "expected"),
    [(False, []), (True, ["client.example"])],
    ids=["host-dropped", "host-preserved"],
)
def test_preserve_host(preserve_host: bool, expected: list[str]) -> None:
    out = forward(headers(("Host", "client.example")), preserve_host=preserve_host)
    assert out.getall("Host", []) == expected
    assert out["X-Forwarded-Host"] == "gw.example"


def test_preserve_host_without_host_header_adds_none() -> None:
    assert "Host" not in forward(headers(), preserve_host=True)


# --- TrustedProxies ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cidrs", "address", "trusted"),
    [
        ((), "10.0.0.2", False),
        (("10.0.0.0/8",), "10.0.0.2", True),
        (("10.0.0.0/8",), "11.0.0.2", False),
        (("10.0.0.0/8",), None, False),
        (("10.0.0.0/8",), "", False),
        (("10.0.0.0/8",), "not-an-ip", False),
        (("10.0.0.0/8",), "10.0.0.2:4711", False),
        (("2001:db8::/32",), "2001:db8::1", True),
        (("fe80::/10",), "fe80::1%eth0", True),
        (("10.0.0.0/8", "192.0.2.0/24"), "192.0.2.200", True),
        (("10.0.0.0/8",), "2001:db8::1", False),
    ],
    ids=[
        "no-networks",
        "inside",
        "outside",
        "none",
        "empty",
        "garbage",
        "with-port",
        "ipv6",
        "ipv6-zone-id",
        "second-network",
        "ipv6-against-ipv4-network",
    ],
)
def test_trusts(cidrs: tuple[str, ...], address: str | None, trusted: bool) -> None:
    assert networks(*cidrs).trusts(address) is trusted


def test_trusts_ipv4_mapped_ipv6_peer() -> None:
    assert networks("10.0.0.0/8").trusts("::ffff:10.0.0.2") is True


@pytest.mark.parametrize(
    ("cidrs", "peer", "xff", "expected"),
    [
        ((), PEER, ["6.6.6.6"], PEER),
        (("10.0.0.0/8",), PEER, ["6.6.6.6"], PEER),
        (("10.0.0.0/8",), PEER, [], PEER),
        (("10.0.0.0/8",), None, ["6.6.6.6"], None),
        (("10.0.0.0/8",), PROXY, ["203.0.113.9"], "203.0.113.9"),
        (("10.0.0.0/8",), PROXY, ["6.6.6.6, 203.0.113.9"], "203.0.113.9"),
        (("10.0.0.0/8",), PROXY, ["6.6.6.6, 203.0.113.9, 10.0.0.3"], "203.0.113.9"),
        (("10.0.0.0/8",), PROXY, ["6.6.6.6", "203.0.113.9, 10.0.0.3"], "203.0.113.9"),
        (("10.0.0.0/8",), PROXY, ["10.0.0.5, 10.0.0.3"], "10.0.0.5"),
        (("10.0.0.0/8",), PROXY, [], PROXY),
        (("10.0.0.0/8",), PROXY, ["garbage"], PROXY),
        (("10.0.0.0/8",), PROXY, ["203.0.113.9:4711"], "203.0.113.9"),
        (("10.0.0.0/8",), PROXY, ["[2001:db8::9]:4711"], "2001:db8::9"),
        (("10.0.0.0/8",), PROXY, ["2001:DB8::9"], "2001:db8::9"),
        (("10.0.0.0/8",), PROXY, ['"203.0.113.9"'], "203.0.113.9"),
        (("10.0.0.0/8",), PROXY, ["6.6.6.6, garbage, 203.0.113.9"], "203.0.113.9"),
        (("10.0.0.0/8", "2001:db8::/32"), "2001:db8::1", ["203.0.113.9"], "203.0.113.9"),
        (("10.0.0.0/8", "2001:db8::/32"), PROXY, ["198.51.100.1, 2001:db8::2"], "198.51.100.1"),
    ],
    ids=[
        "no-trusted-networks-spoofed-xff",
        "untrusted-peer-spoofed-xff",
        "untrusted-peer-no-xff",
        "no-peer",
        "trusted-one-hop",
        "rightmost-untrusted",
        "skips-trusted-hops",
        "several-header-lines",
        "all-trusted-gives-leftmost",
        "trusted-without-xff",
        "only-garbage",
        "ipv4-with-port",
        "bracketed-ipv6-with-port",
        "ipv6-normalised",
        "quoted",
        "garbage-in-the-middle",
        "ipv6-proxy",
        "ipv6-trusted-hop",
    ],
)
def test_client_ip(
    cidrs: tuple[str, ...], peer: str | None, xff: list[str], expected: str | None
) -> None:
    incoming = headers(*(("X-Forwarded-For", value) for value in xff))
    assert networks(*cidrs).client_ip(peer, incoming) == expected


@pytest.mark.parametrize(
    ("forwarded", "expected"),
    [
        (["for=203.0.113.9"], "203.0.113.9"),
        (["for=6.6.6.6, for=203.0.113.9;proto=https"], "203.0.113.9"),
        (["for=6.6.6.6", "for=203.0.113.9, for=10.0.0.3"], "203.0.113.9"),
        (['for="[2001:db8::9]:4711";host=gw.example'], "2001:db8::9"),
        (['for="203.0.113.9:4711"'], "203.0.113.9"),
        (["proto=https;FOR=203.0.113.9"], "203.0.113.9"),
        (['for=6.6.6.6, for="_hidden"'], PROXY),  # an obfuscated hop: vouch for nothing left
        (["for=unknown"], PROXY),
        (['host="a,b";for=203.0.113.9'], "203.0.113.9"),  # a comma inside a quoted-string
    ],
    ids=[
        "one-hop",
        "rightmost-untrusted",
        "several-lines",
        "ipv6-with-port",
        "quoted-ipv4-with-port",
        "parameter-case",
        "obfuscated",
        "unknown",
        "quoted-comma",
    ],
)
def test_client_ip_from_forwarded_when_there_is_no_x_forwarded_for(
    forwarded: list[str], expected: str
) -> None:
    """RFC 7239: a trusted proxy that sends only ``Forwarded`` is read as well."""
    incoming = headers(*(("Forwarded", value) for value in forwarded))
    assert networks("10.0.0.0/8").client_ip(PROXY, incoming) == expected


def test_x_forwarded_for_wins_over_forwarded() -> None:
    incoming = headers(("X-Forwarded-For", "203.0.113.9"), ("Forwarded", "for=198.51.100.1"))
    assert networks("10.0.0.0/8").client_ip(PROXY, incoming) == "203.0.113.9"


def test_an_untrusted_peers_forwarded_is_ignored() -> None:
    incoming = headers(("Forwarded", "for=198.51.100.1"))
    assert networks("10.0.0.0/8").client_ip(PEER, incoming) == PEER


def test_client_ip_does_not_look_past_an_unparsable_trusted_entry() -> None:
    incoming = headers(("X-Forwarded-For", "6.6.6.6, unix:"))
    assert networks("10.0.0.0/8").client_ip(PROXY, incoming) == PROXY


# --- request ids ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given",
    [
        "abc-123",
        "0f8fad5b-d9cb-469f-a165-70867728950e",
        "a" * 128,
        "req:1/2+3=4@host_x.y",
    ],
    ids=["simple", "uuid", "128-chars", "all-allowed-punctuation"],
)
def test_a_trusted_proxy_s_sane_request_id_is_adopted(given: str) -> None:
    caller = networks("10.0.0.0/8").identify(PROXY, headers(("X-Request-ID", given)))
    assert (caller.request_id, caller.upstream_request_id) == (given, given)
    assert caller.client_request_id is None


@pytest.mark.parametrize(
    "given",
    ["abc-123", "0f8fad5b-d9cb-469f-a165-70867728950e", "a" * 128],
)
def test_an_untrusted_caller_s_request_id_is_only_recorded(given: str) -> None:
    caller = networks("10.0.0.0/8").identify(PEER, headers(("X-Request-ID", given)))
    assert caller.request_id != given
    assert re.fullmatch(r"[0-9a-f]{32}", caller.request_id)
    assert caller.client_request_id == given
    assert caller.upstream_request_id == given  # sent upstream as it came


@pytest.mark.parametrize(
    ("given", "recorded"),
    [
        ("", ""),
        ("a" * 129, "a" * 128),
        ("has space", "has_space"),
        ("abc\r\nX-Injected: 1", "abc__X-Injected:_1"),
        ("tab\there", "tab_here"),
        ('quote"d', "quote_d"),
        ("<script>", "_script_"),
        ("caf\u00e9", "caf_"),
        ("semi;colon", "semi_colon"),
    ],
    ids=["empty", "129-chars", "space", "crlf", "tab", "quote", "angle", "non-ascii", "semicolon"],
)
def test_a_recorded_client_request_id_is_sanitized_and_bounded(given: str, recorded: str) -> None:
    caller = TrustedProxies(()).identify(PEER, headers(("X-Request-ID", given)))
    assert caller.client_request_id == recorded
    assert re.fullmatch(r"[0-9a-f]{32}", caller.request_id)


@pytest.mark.parametrize("given", ["", "has space", "a" * 129, "abc\n"])
def test_a_trusted_proxy_s_unsafe_request_id_is_replaced(given: str) -> None:
    caller = networks("10.0.0.0/8").identify(PROXY, headers(("X-Request-ID", given)))
    assert caller.request_id != given
    assert re.fullmatch(r"[0-9a-f]{32}", caller.request_id)
    assert caller.upstream_request_id == caller.request_id


def test_without_a_header_the_gateway_s_id_goes_upstream() -> None:
    caller = TrustedProxies(()).identify(PEER, headers())
    assert caller.client_request_id is None
    assert caller.upstream_request_id == caller.request_id


def test_request_ids_are_fresh_each_time() -> None:
    proxies = TrustedProxies(())
    assert (
        proxies.identify(PEER, headers()).request_id != proxies.identify(PEER, headers()).request_id
    )


def test_upstream_gets_one_request_id_header() -> None:
    out = forward(headers(("X-Request-ID", "client"), ("x-request-id", "again")))
    assert out.getall("X-Request-ID") == ["rid-1"]


# --- response headers ----------------------------------------------------------------------


def test_downstream_keeps_repeated_set_cookie_in_order() -> None:
    incoming = headers(
        ("Set-Cookie", "a=1; Path=/"),
        ("Content-Type", "application/json"),
        ("Set-Cookie", "b=2; HttpOnly"),
        ("set-cookie", "c=3"),
    )
    out = downstream_response_headers(incoming)
    assert out.getall("Set-Cookie") == ["a=1; Path=/", "b=2; HttpOnly", "c=3"]
    assert out["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    "name",
    [*sorted(HOP_BY_HOP), "content-length", "x-internal"],
    ids=[*sorted(HOP_BY_HOP), "content-length", "named-in-connection"],
)
def test_downstream_drops_hop_by_hop_and_content_length(name: str) -> None:
    incoming = headers(
        ("Connection", "X-Internal"),
        (name, "v"),
        ("Location", "https://gw.example/reg/abc"),
        ("Cache-Control", "no-store"),
    )
    out = downstream_response_headers(incoming)
    assert name not in out
    assert "Connection" not in out
    assert out["Location"] == "https://gw.example/reg/abc"
    assert out["Cache-Control"] == "no-store"


def test_downstream_keeps_end_to_end_headers_unchanged() -> None:
    pairs = [
        ("Content-Type", "application/json; charset=utf-8"),
        ("Cache-Control", "no-store"),
        ("Pragma", "no-cache"),
        ("WWW-Authenticate", 'Bearer error="invalid_token"'),
        ("Vary", "Origin"),
        ("Vary", "Accept-Encoding"),
    ]
    out = downstream_response_headers(headers(*pairs))
    assert list(out.items()) == [*pairs, ("Server", "dcr-gateway")]


def test_downstream_names_the_gateway_not_the_upstream_server() -> None:
    out = downstream_response_headers(headers(("Server", "nginx/1.25.3"), ("Server", "x")))
    assert out.getall("Server") == ["dcr-gateway"]
