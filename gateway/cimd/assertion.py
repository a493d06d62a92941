"""Client assertions of ``private_key_jwt`` metadata-document clients (RFC 7523 §3,
RFC 7521 §4.2, OIDC Core §9).  Pure: the keys, the acceptable audiences and the clock are
given; whether a ``jti`` was seen before is the caller's question (it needs storage).

A bridged ``private_key_jwt`` client authenticates to the gateway, not to the upstream:
the upstream knows the bridged client by a secret only the gateway holds.  So the gateway
verifies what the upstream would have:

* the assertion is a compact JWS (three parts; never JWE, never ``alg: none``), signed
  with an asymmetric algorithm (RS*, PS*, ES*, Ed25519, EdDSA) by a key of the document's JWKS (its
  ``token_endpoint_auth_signing_alg``, when the document names one);
* ``iss`` and ``sub`` are both the client id, the document's URL, exactly (RFC 7523 §3
  items 1 and 2);
* ``aud`` names this authorization server: its issuer or one of its endpoint URLs
  (RFC 7523 §3 item 3; RFC 9126 §2 for pushed authorization requests);
* ``exp`` is present and not passed, and not further ahead than the gateway remembers
  ``jti`` values (RFC 7523 §3 item 4: the server may reject assertions with an
  unreasonably far ``exp``); ``nbf`` and ``iat`` are not in the future;
* ``jti`` is present, so that the caller can refuse a replay (RFC 7523 §3 item 7).

A key set that carries private key material, or symmetric keys, is refused whole: a
public document publishing a private key is compromised, and an ``oct`` key would make
any HMAC algorithm a shared-secret method the draft forbids.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Asymmetric JWS algorithms (RFC 7518 §3.1, RFC 8037 §3.1).
ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "Ed25519",  # RFC 9864, fully specified
    "EdDSA",  # RFC 8037, deprecated by RFC 9864 but what clients send today
)
#: The longest assertion lifetime accepted, in seconds; ``jti`` values are kept this long.
MAX_LIFETIME = 600.0
#: Clock skew tolerated on ``exp``, ``nbf`` and ``iat``.
LEEWAY = 30.0
#: The longest assertion read (a JWS with a large RSA signature is about 1 KB).
MAX_ASSERTION = 8192
#: Members of a JWK that only a private (or symmetric) key has (RFC 7518 §6).
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


class AssertionRefused(Exception):
    """Why an assertion (or a key set) cannot authenticate the client; ``description`` is
    safe for an RFC 6749 §5.2 ``error_description``."""

    def __init__(self, description: str, *, unknown_key: bool = False) -> None:
        super().__init__(description)
        self.description = description
        #: The assertion names a key the set does not have (a rotation: fetch again).
        self.unknown_key = unknown_key


@dataclass(frozen=True, slots=True)
class Verified:
    """A verified assertion: its ``jti`` and when it stops being valid."""

    jti: str
    expires_at: float


def load_keys(jwks: object) -> KeySet:
    """The document's public signing keys, or :class:`AssertionRefused`."""
    if not isinstance(jwks, Mapping) or not isinstance(jwks.get("keys"), list):
        raise AssertionRefused("the client's jwks is not a JSON Web Key Set (RFC 7517 section 5)")
    keys = []
    for key in jwks["keys"]:
        if not isinstance(key, Mapping):
            raise AssertionRefused("the client's jwks has a member that is not a JSON object")
        if _PRIVATE_MEMBERS & key.keys():
            raise AssertionRefused(
                "the client's jwks carries private or symmetric key material; it is refused"
            )
        if key.get("use", "sig") != "sig":
            continue
        keys.append(dict(key))
    if not keys:
        raise AssertionRefused("the client's jwks has no signing key")
    try:
        return KeySet.import_key_set({"keys": keys})
    except (JoseError, ValueError, TypeError):
        raise AssertionRefused("the client's jwks has a key that cannot be read") from None


def verify(
    assertion: str,
    keys: KeySet,
    *,
    client_id: str,
    audiences: Collection[str],
    now: float,
    algorithm: str | None = None,
) -> Verified:
    """Check ``assertion`` for ``client_id`` (see the module's list), or raise."""
    if len(assertion) > MAX_ASSERTION or assertion.count(".") != 2:
        raise AssertionRefused("client_assertion is not a compact JWS (RFC 7515 section 7.1)")
    allowed = ALGORITHMS if algorithm is None else (algorithm,)
    if algorithm is not None and algorithm not in ALGORITHMS:
        raise AssertionRefused(
            "the document's token_endpoint_auth_signing_alg is not an asymmetric algorithm"
        )
    try:
        token = jwt.decode(assertion, keys, algorithms=list(allowed))
    except JoseError as exc:
        raise _refusal(exc) from None
    except (ValueError, TypeError, KeyError):
        raise AssertionRefused("client_assertion cannot be read") from None
    claims: dict[str, Any] = dict(token.claims)
    for name in ("iss", "sub"):
        if claims.get(name) != client_id:
            raise AssertionRefused(
                f"the assertion's {name} must be the client id (RFC 7523 section 3)"
            )
    aud = claims.get("aud")
    named = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if not any(isinstance(a, str) and a in audiences for a in named):
        raise AssertionRefused(
            "the assertion's aud does not name this authorization server (its issuer or "
            "token endpoint, RFC 7523 section 3)"
        )
    exp = claims.get("exp")
    if not _is_number(exp):
        raise AssertionRefused("the assertion has no numeric exp (RFC 7523 section 3)")
    if exp + LEEWAY < now:
        raise AssertionRefused("the assertion has expired")
    if exp > now + MAX_LIFETIME + LEEWAY:
        raise AssertionRefused(
            f"the assertion's exp is more than {int(MAX_LIFETIME)} s ahead; use a "
            "short-lived assertion"
        )
    for name in ("nbf", "iat"):
        value = claims.get(name)
        if value is not None and (not _is_number(value) or value > now + LEEWAY):
            raise AssertionRefused(f"the assertion's {name} is in the future or not a number")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 256:
        raise AssertionRefused("the assertion has no jti (RFC 7523 section 3)")
    return Verified(jti, float(exp) + LEEWAY)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _refusal(exc: JoseError) -> AssertionRefused:
    name = type(exc).__name__
    if name in ("BadSignatureError",):
        return AssertionRefused("the assertion's signature does not verify")
    if name in ("UnsupportedAlgorithmError", "MissingAlgorithmError"):
        return AssertionRefused(
            "the assertion's alg is not accepted (an asymmetric JWS algorithm, the "
            "document's token_endpoint_auth_signing_alg when it names one)"
        )
    if name in ("InvalidKeyIdError", "MissingKeyError", "InvalidKeyTypeError"):
        return AssertionRefused(
            "the assertion is signed with a key the client's jwks does not have",
            unknown_key=True,
        )
    return AssertionRefused("client_assertion cannot be read as a signed JWT")
