"""Parsing a registration request body into client metadata (RFC 7591 §2, §3.1).

The body must be exactly one JSON object (RFC 8259, UTF-8) with no duplicate member
names at any depth: two ``redirect_uris`` keys would let the gateway judge one value while
the upstream's parser keeps the other.  Known fields must have the types RFC 7591 §2
(and OpenID Connect Dynamic Client Registration 1.0 §2) give them, so the policy engine
never meets a number where it expects a list of strings.  Unknown fields pass untouched.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.errors import InvalidClientMetadata

STRING_ARRAY_FIELDS = frozenset(
    {
        "redirect_uris",
        "grant_types",
        "response_types",
        "contacts",
        "post_logout_redirect_uris",
        "request_uris",
        "default_acr_values",
    }
)
STRING_FIELDS = frozenset(
    {
        "token_endpoint_auth_method",
        "client_name",
        "client_uri",
        "logo_uri",
        "scope",
        "tos_uri",
        "policy_uri",
        "jwks_uri",
        "software_id",
        "software_version",
        "software_statement",
        "application_type",
        "sector_identifier_uri",
        "subject_type",
        "initiate_login_uri",
        "backchannel_logout_uri",
        "frontchannel_logout_uri",
        "token_endpoint_auth_signing_alg",
        "id_token_signed_response_alg",
        "userinfo_signed_response_alg",
        "request_object_signing_alg",
    }
)
#: Fields that RFC 7591 §2.2 lets carry a language tag: ``client_name#ja-Jpan-JP``.
LOCALIZABLE_FIELDS = frozenset({"client_name", "client_uri", "logo_uri", "tos_uri", "policy_uri"})
OBJECT_FIELDS = frozenset({"jwks"})
INTEGER_FIELDS = frozenset({"default_max_age"})
BOOLEAN_FIELDS = frozenset({"require_auth_time"})

RULE_JSON = "request.invalid_json"
RULE_DUPLICATE = "request.duplicate_key"
RULE_NOT_OBJECT = "request.not_object"
RULE_TYPE = "metadata.invalid_type"


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > 4300:  # CPython's own int-from-text limit
        raise ValueError("an integer has too many digits")
    return int(text)


def _display(key: str) -> str:
    return json.dumps(key[:100])


def parse_body(body: bytes) -> dict[str, Any]:
    """Decode and check a registration body; raise :class:`InvalidClientMetadata`."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidClientMetadata(
            "the request body is not valid UTF-8 (RFC 8259 §8.1)", rule=RULE_JSON
        ) from None
    try:
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constants,
            parse_float=_finite_float,
            parse_int=_bounded_int,
        )
    except _DuplicateKey as dup:
        raise InvalidClientMetadata(
            f"duplicate key {_display(dup.key)} in the request body", rule=RULE_DUPLICATE
        ) from None
    except RecursionError:
        raise InvalidClientMetadata(
            "the request body is nested too deeply", rule=RULE_JSON
        ) from None
    except ValueError as exc:  # JSONDecodeError, NaN, over-long integers
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise InvalidClientMetadata(
            f"the request body is not valid JSON: {reason}", rule=RULE_JSON
        ) from None
    if not isinstance(value, dict):
        raise InvalidClientMetadata(
            "the request body must be a JSON object of client metadata (RFC 7591 §3.1)",
            rule=RULE_NOT_OBJECT,
        )
    check_types(value)
    if "\\u" in text:  # only escapes can smuggle an unpaired surrogate past strict UTF-8
        serialize(value)
    return value


def check_types(metadata: dict[str, Any]) -> None:
    """Raise for the first known field whose JSON type is not the RFC's."""
    for key, value in metadata.items():
        base = key.split("#", 1)[0] if "#" in key else key
        if "#" in key and base not in LOCALIZABLE_FIELDS:
            expected = None
        elif base in STRING_ARRAY_FIELDS:
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
            expected = None if ok else "an array of strings"
        elif base in STRING_FIELDS:
            expected = None if isinstance(value, str) else "a string"
        elif base in OBJECT_FIELDS:
            expected = None if isinstance(value, dict) else "a JSON object"
        elif base in INTEGER_FIELDS:
            ok = isinstance(value, int) and not isinstance(value, bool)
            expected = None if ok else "an integer"
        elif base in BOOLEAN_FIELDS:
            expected = None if isinstance(value, bool) else "a boolean"
        else:
            expected = None
        if expected is not None:
            raise InvalidClientMetadata(
                f"{_display(key)} must be {expected} (RFC 7591 §2)", rule=RULE_TYPE
            )


def serialize(metadata: dict[str, Any]) -> bytes:
    """The exact bytes forwarded upstream: the metadata that was judged, re-encoded.

    An unpaired surrogate (``"\\ud800"`` is valid JSON but not valid UTF-8) is refused
    here rather than forwarded as bytes the upstream might decode differently.
    """
    try:
        return json.dumps(
            metadata, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode("utf-8")
    except ValueError as exc:
        if not isinstance(exc, UnicodeEncodeError):
            raise InvalidClientMetadata(
                "the request body contains a number JSON cannot carry", rule=RULE_JSON
            ) from None
        raise InvalidClientMetadata(
            "the request body contains an unpaired UTF-16 surrogate", rule=RULE_JSON
        ) from None
