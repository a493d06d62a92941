"""gateway.cimd.assertion: RFC 7523 §3 client assertions checked against a document's keys
(pure: keys, audiences and the clock are given)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey

from gateway.cimd.assertion import (
    ALGORITHMS,
    LEEWAY,
    MAX_LIFETIME,
    AssertionRefused,
    load_keys,
    verify,
)

CLIENT = "https://agent.example.com/oauth/client.json"
AUD = "https://as.example.com/token"
NOW = 1_800_000_000.0
EC = ECKey.generate_key("P-256", parameters={"kid": "ec"})
RSA = RSAKey.generate_key(2048, parameters={"kid": "rsa"})
ED = OKPKey.generate_key("Ed25519", parameters={"kid": "ed"})
KEYS = load_keys({"keys": [k.as_dict(private=False) for k in (EC, RSA, ED)]})


def claims(**changes: Any) -> dict[str, Any]:
    body = {"iss": CLIENT, "sub": CLIENT, "aud": AUD, "exp": NOW + 60, "jti": "j1", **changes}
    return {k: v for k, v in body.items() if v is not None}


def sign(body: dict[str, Any], key: Any = EC, alg: str = "ES256") -> str:
    return jwt.encode({"alg": alg, "kid": key.kid}, body, key, algorithms=[alg])


def check(token: str, **kwargs: Any):
    return verify(token, KEYS, client_id=CLIENT, audiences={AUD}, now=NOW, **kwargs)


@pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
@pytest.mark.parametrize(
    ("key", "alg"),
    [(EC, "ES256"), (RSA, "RS256"), (RSA, "PS256"), (ED, "Ed25519"), (ED, "EdDSA")],
)
def test_asymmetric_algorithms_verify(key: Any, alg: str) -> None:
    verified = check(sign(claims(), key, alg))
    assert (verified.jti, verified.expires_at) == ("j1", NOW + 60 + LEEWAY)


def test_aud_may_be_a_list_naming_this_server() -> None:
    assert check(sign(claims(aud=["https://elsewhere.example", AUD]))).jti == "j1"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (claims(iss="https://other.example/c.json"), "iss"),
        (claims(sub="someone"), "sub"),
        (claims(aud="https://elsewhere.example/token"), "aud"),
        (claims(aud=[]), "aud"),
        (claims(exp=None), "exp"),
        (claims(exp="soon"), "exp"),
        (claims(exp=True), "exp"),
        (claims(exp=NOW - LEEWAY - 1), "expired"),
        (claims(exp=NOW + MAX_LIFETIME + LEEWAY + 1), "ahead"),
        (claims(nbf=NOW + LEEWAY + 5), "nbf"),
        (claims(iat=NOW + LEEWAY + 5), "iat"),
        (claims(jti=None), "jti"),
        (claims(jti=""), "jti"),
        (claims(jti="x" * 257), "jti"),
    ],
)
def test_claims_that_do_not_hold_are_refused(body: dict[str, Any], words: str) -> None:
    with pytest.raises(AssertionRefused) as refused:
        check(sign(body))
    assert words in refused.value.description


def test_the_clock_skew_is_tolerated() -> None:
    assert check(sign(claims(exp=NOW - LEEWAY + 1, iat=NOW + LEEWAY - 1))).jti == "j1"


def test_the_documents_signing_alg_is_the_only_one() -> None:
    token = sign(claims(), RSA, "RS256")
    with pytest.raises(AssertionRefused, match="alg"):
        check(token, algorithm="ES256")
    with pytest.raises(AssertionRefused, match="asymmetric"):
        check(token, algorithm="HS256")


def _b64(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "token",
    [
        f"{_b64({'alg': 'none'})}.{_b64(claims())}.",
        f"{_b64({'alg': 'HS256', 'kid': 'ec'})}.{_b64(claims())}.c2ln",
        "a.b.c.d.e",
        "only-one-part",
        "x" * 9000,
        f"{_b64({'alg': 'ES256', 'kid': 'ec'})}.{_b64(claims())}.AAAA",
        f"{_b64({'alg': 'ES256', 'kid': 'ec'})}.bm90IGpzb24.AAAA",
        f"{_b64(['not', 'an', 'object'])}.{_b64(claims())}.AAAA",
    ],
    ids=[
        "alg none",
        "HS256",
        "JWE",
        "one part",
        "too long",
        "bad signature",
        "payload not JSON",
        "header not an object",
    ],
)
def test_what_is_not_a_valid_jws_is_refused(token: str) -> None:
    with pytest.raises(AssertionRefused):
        check(token)


def test_a_key_the_set_lacks_is_reported_as_unknown() -> None:
    stranger = ECKey.generate_key("P-256", parameters={"kid": "new"})
    with pytest.raises(AssertionRefused) as refused:
        check(sign(claims(), stranger))
    assert refused.value.unknown_key


@pytest.mark.parametrize(
    "jwks",
    [
        None,
        [],
        {"keys": "no"},
        {"keys": ["no"]},
        {"keys": []},
        {"keys": [EC.as_dict(private=True)]},
        {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]},
        {"keys": [{**EC.as_dict(private=False), "use": "enc"}]},
        {"keys": [{"kty": "EC", "crv": "P-256", "x": "bad"}]},
    ],
    ids=[
        "none",
        "a list",
        "keys not a list",
        "a key not an object",
        "empty",
        "a private key",
        "a symmetric key",
        "only an encryption key",
        "a broken key",
    ],
)
def test_key_sets_that_cannot_serve_are_refused(jwks: Any) -> None:
    with pytest.raises(AssertionRefused):
        load_keys(jwks)


def test_only_asymmetric_algorithms_are_listed() -> None:
    assert not [a for a in ALGORITHMS if a.startswith("HS") or a == "none"]


def test_a_real_clock_works() -> None:
    now = time.time()
    token = sign(claims(exp=now + 60))
    assert verify(token, KEYS, client_id=CLIENT, audiences={AUD}, now=now).jti == "j1"


# --------------------------------------------------------------------------- hostile headers


def _forged(header: dict[str, Any], body: dict[str, Any], key: Any, alg: str) -> str:
    """A JWS whose protected header is exactly ``header`` (joserfc signs it as given)."""
    from joserfc import jws

    payload = json.dumps(body).encode()
    return jws.serialize_compact({"alg": alg, **header}, payload, key, algorithms=[alg])


def test_a_key_embedded_in_the_header_is_not_trusted() -> None:
    """``jwk`` (RFC 7515 §4.1.3): the attacker's own key, with a kid the set has."""
    attacker = ECKey.generate_key("P-256", parameters={"kid": "ec"})
    header = {"kid": "ec", "jwk": attacker.as_dict(private=False)}
    with pytest.raises(AssertionRefused):
        check(_forged(header, claims(), attacker, "ES256"))


@pytest.mark.parametrize(
    "header",
    [
        {"kid": "ec", "jku": "https://attacker.example/jwks.json"},
        {"kid": "ec", "x5u": "https://attacker.example/cert.pem"},
    ],
    ids=["jku", "x5u"],
)
def test_key_urls_in_the_header_are_not_followed(header: dict[str, Any]) -> None:
    """Signed by a stranger: only the document's own keys verify, wherever the header
    points."""
    attacker = ECKey.generate_key("P-256", parameters={"kid": "ec"})
    with pytest.raises(AssertionRefused):
        check(_forged(header, claims(), attacker, "ES256"))


def test_an_alg_that_does_not_fit_the_key_is_refused() -> None:
    """``RS256`` in the header over the set's EC key of that kid (algorithm confusion)."""
    forged = _forged({"kid": "ec"}, claims(), RSA, "RS256")
    with pytest.raises(AssertionRefused):
        check(forged)


@pytest.mark.parametrize(
    "aud",
    [[1, 2], [None], {"aud": AUD}, AUD + "/", AUD.upper(), " " + AUD],
    ids=["numbers", "null", "an object", "trailing slash", "upper case", "space"],
)
def test_aud_is_compared_exactly(aud: Any) -> None:
    with pytest.raises(AssertionRefused, match="aud"):
        check(sign(claims(aud=aud)))


@pytest.mark.parametrize("exp", [1e308, float(NOW + 60) + 0.5], ids=["huge", "fractional"])
def test_numeric_exp_edge_cases(exp: float) -> None:
    if exp > NOW + MAX_LIFETIME:
        with pytest.raises(AssertionRefused, match="ahead"):
            check(sign(claims(exp=exp)))
    else:
        assert check(sign(claims(exp=exp))).expires_at == exp + LEEWAY
