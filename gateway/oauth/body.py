"""Parsing a registration request body into client metadata (RFC 7591 §2, §3.1).

The body must be exactly one JSON object (RFC 8259, UTF-8) with no duplicate member
names at any depth: two ``redirect_uris`` keys would let the gateway judge one value while
the upstream's parser keeps the other.  Known fields must have the types RFC 7591 §2
(and OpenID Connect Dynamic Client Registration 1.0 §2) give them, so the policy engine
never meets a number where it expects a list of strings.  Unknown fields pass untouched.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from gateway import fastjson, rules
from gateway.oauth.rfc7591 import (
    BOOLEAN_FIELDS,
    CAPPED_LIST_FIELDS,
    INTEGER_FIELDS,
    LOCALIZABLE_FIELDS,
    OBJECT_FIELDS,
    STRING_ARRAY_FIELDS,
    STRING_FIELDS,
)

#: Most entries of a capped list field, or language-tagged variants of one field.  Real
#: clients send a handful; the caps bound what one request can cost the event loop.
MAX_LIST_ITEMS = 20
#: Most members of the metadata object (RFC 7591 §2 defines 17, OIDC about 30 more).
MAX_MEMBERS = 100
#: Most scope tokens, and the longest scope string (RFC 6749 §3.3 sets no limit).
MAX_SCOPES = 100
MAX_SCOPE_LENGTH = 4096


def _too_many_scopes(scope: str) -> bool:
    return len(scope) > MAX_SCOPE_LENGTH or (
        scope.count(" ") >= MAX_SCOPES and (len(scope.split()) > MAX_SCOPES)
    )


class DuplicateKey(ValueError):
    """A JSON object names a member twice (RFC 8259 §4 leaves the meaning undefined; two
    parsers reading it differently is how a judged body and a used body diverge)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def strict_loads(text: str) -> Any:
    """JSON as the gateway reads every document: duplicate member names, ``NaN`` and
    infinities refused (:class:`DuplicateKey`, ``ValueError``)."""
    return json.loads(
        text,
        object_pairs_hook=_no_duplicates,
        parse_constant=_no_constants,
        parse_float=_finite_float,
    )  # integers over 4,300 digits raise ValueError (CPython's own limit, PEP 651)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)  # in C; only a duplicate makes the lengths differ
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _display(key: str) -> str:
    return json.dumps(key[:100])


def parse_body(body: bytes) -> dict[str, Any]:
    """Decode and check a registration body; raise ``invalid_client_metadata``."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise rules.BODY_INVALID_JSON.refuse(
            "the request body is not valid UTF-8 (RFC 8259 §8.1)"
        ) from None
    try:
        value = strict_loads(text)
    except DuplicateKey as dup:
        raise rules.BODY_DUPLICATE_KEY.refuse(
            f"duplicate key {_display(dup.key)} in the request body"
        ) from None
    except RecursionError:
        raise rules.BODY_INVALID_JSON.refuse("the request body is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, NaN, over-long integers
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise rules.BODY_INVALID_JSON.refuse(
            f"the request body is not valid JSON: {reason}"
        ) from None
    if not isinstance(value, dict):
        raise rules.BODY_NOT_OBJECT.refuse(
            "the request body must be a JSON object of client metadata (RFC 7591 §3.1)"
        )
    check_types(value)
    if "\\u" in text:  # only escapes can smuggle an unpaired surrogate past strict UTF-8
        serialize(value)
    return value


def check_types(metadata: Mapping[str, Any]) -> None:
    """Raise for the first known field whose JSON type is not the RFC's, and for lists
    longer than any real client sends (:data:`MAX_LIST_ITEMS`); works on any mapping."""
    if len(metadata) > MAX_MEMBERS:
        raise rules.METADATA_TOO_MANY_VALUES.refuse(
            f"the client metadata has {len(metadata)} members; at most {MAX_MEMBERS} are accepted"
        )
    variants: dict[str, int] = {}
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise rules.METADATA_INVALID_TYPE.refuse("member names must be strings")
        base = key.split("#", 1)[0] if "#" in key else key
        if "#" in key:
            variants[base] = variants.get(base, 0) + 1
            if variants[base] > MAX_LIST_ITEMS:
                raise rules.METADATA_TOO_MANY_VALUES.refuse(
                    f"more than {MAX_LIST_ITEMS} language-tagged variants of {_display(base)}"
                )
        if "#" in key and base not in LOCALIZABLE_FIELDS:
            expected = None
        elif base in STRING_ARRAY_FIELDS:
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
            expected = None if ok else "an array of strings"
            if ok and base in CAPPED_LIST_FIELDS and len(value) > MAX_LIST_ITEMS:
                raise rules.METADATA_TOO_MANY_VALUES.refuse(
                    f"{_display(key)} has {len(value)} entries; at most {MAX_LIST_ITEMS} "
                    "are accepted"
                )
        elif base in STRING_FIELDS:
            expected = None if isinstance(value, str) else "a string"
            if base == "scope" and expected is None and _too_many_scopes(value):
                raise rules.METADATA_TOO_MANY_VALUES.refuse(
                    f"scope has more than {MAX_SCOPES} scope tokens or {MAX_SCOPE_LENGTH} "
                    "characters"
                )
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
            raise rules.METADATA_INVALID_TYPE.refuse(
                f"{_display(key)} must be {expected} (RFC 7591 §2)"
            )


def serialize(metadata: Mapping[str, Any]) -> bytes:
    """The exact bytes forwarded upstream: the metadata that was judged, re-encoded.

    An unpaired surrogate (``"\\ud800"`` is valid JSON but not valid UTF-8) is refused
    here rather than forwarded as bytes the upstream might decode differently.
    """
    try:
        return fastjson.dumps(metadata, allow_nan=False, strict_utf8=True)
    except ValueError as exc:
        if not isinstance(exc, UnicodeEncodeError):
            raise rules.BODY_INVALID_JSON.refuse(
                "the request body contains a number JSON cannot carry"
            ) from None
        raise rules.BODY_INVALID_JSON.refuse(
            "the request body contains an unpaired UTF-16 surrogate"
        ) from None
