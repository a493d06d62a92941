"""Unit tests for gateway.oauth.body: the registration body as typed client metadata."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.errors import InvalidClientMetadata
from gateway.oauth.body import (
    BOOLEAN_FIELDS,
    INTEGER_FIELDS,
    LOCALIZABLE_FIELDS,
    OBJECT_FIELDS,
    STRING_ARRAY_FIELDS,
    STRING_FIELDS,
    check_types,
    parse_body,
    serialize,
)


def refusal(body: bytes) -> InvalidClientMetadata:
    with pytest.raises(InvalidClientMetadata) as info:
        parse_body(body)
    error = info.value
    assert error.status == 400
    assert error.error == "invalid_client_metadata"
    return error


# --- valid bodies --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{}", {}),
        (b' \n {"client_name": "x"} \n', {"client_name": "x"}),
        (
            b'{"redirect_uris": ["https://a.example/cb"], "grant_types": []}',
            {"redirect_uris": ["https://a.example/cb"], "grant_types": []},
        ),
        (
            '{"client_name": "Caf\u00e9 \u65e5\u672c"}'.encode(),
            {"client_name": "Caf\u00e9 \u65e5\u672c"},
        ),
        (b'{"client_name": "\\u00e9\\ud83d\\ude00"}', {"client_name": "\u00e9\U0001f600"}),
        (
            b'{"jwks": {"keys": [{"kty": "EC", "crv": "P-256"}]}}',
            {"jwks": {"keys": [{"kty": "EC", "crv": "P-256"}]}},
        ),
        (b'{"default_max_age": 3600, "require_auth_time": true}', None),
        (b'{"client_name#ja-Jpan-JP": "\\u30af"}', {"client_name#ja-Jpan-JP": "\u30af"}),
        (b'{"a": 1, "b": 2}', {"a": 1, "b": 2}),
        (b'{"nested": [[[[{"a": {"b": [1]}}]]]]}', None),
        (b'{"n": ' + b"9" * 4000 + b"}", {"n": int("9" * 4000)}),
    ],
    ids=[
        "empty-object",
        "surrounding-whitespace",
        "string-arrays",
        "utf8-unicode",
        "escaped-unicode-and-surrogate-pair",
        "jwks-object",
        "integer-and-boolean-fields",
        "localized-name",
        "unknown-fields",
        "moderate-nesting",
        "long-but-allowed-integer",
    ],
)
def test_valid_bodies(body: bytes, expected: dict[str, Any] | None) -> None:
    result = parse_body(body)
    assert result == (json.loads(body) if expected is None else expected)


@pytest.mark.parametrize(
    "value",
    [1, 1.5, -3, True, False, None, "s", [1, "a", None], {"a": [1]}],
    ids=["int", "float", "negative", "true", "false", "null", "string", "mixed-list", "object"],
)
def test_unknown_fields_of_any_type_pass(value: Any) -> None:
    metadata = {"x_vendor_field": value, "software_name#xx": value, "": value}
    assert parse_body(json.dumps(metadata).encode()) == metadata


# --- JSON-level refusals -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "rule", "description_part"),
    [
        (b'{"client_name": "\xff"}', "request.invalid_json", "not valid UTF-8"),
        (b'{"client_name": "\xc3"}', "request.invalid_json", "not valid UTF-8"),
        (b'{"a": "\xed\xa0\x80"}', "request.invalid_json", "not valid UTF-8"),
        ("{}".encode("utf-16"), "request.invalid_json", "not valid UTF-8"),
        (b"\xef\xbb\xbf{}", "request.invalid_json", "not valid JSON"),
        (b"", "request.invalid_json", "not valid JSON"),
        (b"{", "request.invalid_json", "not valid JSON"),
        (b'{"a": 1,}', "request.invalid_json", "not valid JSON"),
        (b"{'a': 1}", "request.invalid_json", "not valid JSON"),
        (b'{"a": 1}{"b": 2}', "request.invalid_json", "not valid JSON"),
        (b'{"a": "\x01"}', "request.invalid_json", "not valid JSON"),
        (b'{"a": NaN}', "request.invalid_json", "NaN"),
        (b'{"a": Infinity}', "request.invalid_json", "Infinity"),
        (b'{"a": -Infinity}', "request.invalid_json", "-Infinity"),
        (b'{"a": ' + b"1" * 5000 + b"}", "request.invalid_json", "not valid JSON"),
        (b'{"a": "\\ud800"}', "request.invalid_json", "unpaired UTF-16 surrogate"),
        (b'{"a": "\\udc00x"}', "request.invalid_json", "unpaired UTF-16 surrogate"),
        (b'{"\\ud800": 1}', "request.invalid_json", "unpaired UTF-16 surrogate"),
        (
            b'{"jwks": {"keys": [{"k": "\\ud83d"}]}}',
            "request.invalid_json",
            "unpaired UTF-16 surrogate",
        ),
        (b"[]", "request.not_object", "must be a JSON object"),
        (b'[{"client_name": "x"}]', "request.not_object", "must be a JSON object"),
        (b'"client"', "request.not_object", "must be a JSON object"),
        (b"null", "request.not_object", "must be a JSON object"),
        (b"42", "request.not_object", "must be a JSON object"),
        (b"true", "request.not_object", "must be a JSON object"),
    ],
    ids=[
        "invalid-utf8-byte",
        "truncated-utf8",
        "utf8-encoded-surrogate",
        "utf16-with-bom",
        "utf8-bom",
        "empty",
        "truncated",
        "trailing-comma",
        "single-quotes",
        "two-objects",
        "raw-control-character",
        "nan",
        "infinity",
        "minus-infinity",
        "huge-integer",
        "lone-high-surrogate",
        "lone-low-surrogate",
        "surrogate-in-key",
        "surrogate-nested",
        "array",
        "array-of-object",
        "string",
        "null",
        "number",
        "boolean",
    ],
)
def test_refused_bodies(body: bytes, rule: str, description_part: str) -> None:
    error = refusal(body)
    assert error.rule == rule
    assert description_part in error.description


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (
            b'{"redirect_uris": ["https://a/cb"], "redirect_uris": ["https://evil/cb"]}',
            "redirect_uris",
        ),
        (b'{"a": 1, "a": 1}', "a"),
        (b'{"jwks": {"keys": [], "keys": []}}', "keys"),
        (b'{"jwks": {"keys": [{"kty": "RSA", "kty": "EC"}]}}', "kty"),
        (b'{"x": [[{"deep": 1, "deep": 2}]]}', "deep"),
        (b'{"a": 1, "\\u0061": 2}', "a"),
        (b'{"client_name#en": "x", "client_name#en": "y"}', "client_name#en"),
    ],
    ids=[
        "top-level-redirect-uris",
        "same-value",
        "inside-jwks",
        "inside-a-jwk",
        "inside-arrays",
        "escaped-spelling",
        "localized-key",
    ],
)
def test_duplicate_keys_are_refused_and_named(body: bytes, key: str) -> None:
    error = refusal(body)
    assert error.rule == "request.duplicate_key"
    assert error.description == f"duplicate key {json.dumps(key)} in the request body"


def test_duplicate_key_name_is_cut_short_in_the_description() -> None:
    key = "k" * 5000
    error = refusal(f'{{"{key}": 1, "{key}": 2}}'.encode())
    assert error.description == f'duplicate key "{"k" * 100}" in the request body'


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b'{"jwks": ' + b"[" * 100_000,
    ],
    ids=["nested-arrays", "nested-objects", "unterminated-nesting"],
)
def test_deep_nesting_is_refused_without_crashing(body: bytes) -> None:
    error = refusal(body)
    assert error.rule == "request.invalid_json"
    assert error.description == "the request body is nested too deeply"


@pytest.mark.parametrize("number", [b"1e400", b"-1e400"], ids=["positive", "negative"])
def test_overflowing_float_is_refused(number: bytes) -> None:
    with pytest.raises(InvalidClientMetadata):
        serialize(parse_body(b'{"x_vendor_field": ' + number + b"}"))


# --- RFC 7591 field types ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"redirect_uris": "https://a/cb"}, '"redirect_uris" must be an array of strings'),
        ({"redirect_uris": ["https://a/cb", 5]}, '"redirect_uris" must be an array of strings'),
        ({"redirect_uris": [["https://a/cb"]]}, '"redirect_uris" must be an array of strings'),
        ({"redirect_uris": None}, '"redirect_uris" must be an array of strings'),
        ({"grant_types": {"a": 1}}, '"grant_types" must be an array of strings'),
        ({"contacts": [None]}, '"contacts" must be an array of strings'),
        ({"client_name": 42}, '"client_name" must be a string'),
        ({"client_name": ["x"]}, '"client_name" must be a string'),
        ({"client_name": None}, '"client_name" must be a string'),
        ({"token_endpoint_auth_method": True}, '"token_endpoint_auth_method" must be a string'),
        ({"scope": ["openid"]}, '"scope" must be a string'),
        ({"software_statement": {"alg": "none"}}, '"software_statement" must be a string'),
        ({"jwks": "{}"}, '"jwks" must be a JSON object'),
        ({"jwks": [{"kty": "RSA"}]}, '"jwks" must be a JSON object'),
        ({"default_max_age": "3600"}, '"default_max_age" must be an integer'),
        ({"default_max_age": 1.5}, '"default_max_age" must be an integer'),
        ({"default_max_age": True}, '"default_max_age" must be an integer'),
        ({"require_auth_time": "true"}, '"require_auth_time" must be a boolean'),
        ({"require_auth_time": 1}, '"require_auth_time" must be a boolean'),
        ({"client_name#ja-Jpan-JP": 7}, '"client_name#ja-Jpan-JP" must be a string'),
        ({"logo_uri#en": ["x"]}, '"logo_uri#en" must be a string'),
        ({"tos_uri#": None}, '"tos_uri#" must be a string'),
    ],
    ids=[
        "redirect-uris-string",
        "redirect-uris-with-number",
        "redirect-uris-nested-list",
        "redirect-uris-null",
        "grant-types-object",
        "contacts-null-item",
        "client-name-number",
        "client-name-list",
        "client-name-null",
        "auth-method-boolean",
        "scope-list",
        "software-statement-object",
        "jwks-string",
        "jwks-list",
        "max-age-string",
        "max-age-float",
        "max-age-boolean",
        "auth-time-string",
        "auth-time-number",
        "localized-name-number",
        "localized-logo-list",
        "empty-language-tag",
    ],
)
def test_wrong_types_are_refused(metadata: dict[str, Any], message: str) -> None:
    error = refusal(json.dumps(metadata).encode())
    assert error.rule == "metadata.invalid_type"
    assert error.description == f"{message} (RFC 7591 §2)"


@pytest.mark.parametrize(
    ("field", "good", "bad"),
    [
        *((f, ["a"], "a") for f in sorted(STRING_ARRAY_FIELDS)),
        *((f, "a", 1) for f in sorted(STRING_FIELDS)),
        *((f, {"keys": []}, []) for f in sorted(OBJECT_FIELDS)),
        *((f, 10, 1.0) for f in sorted(INTEGER_FIELDS)),
        *((f, True, "true") for f in sorted(BOOLEAN_FIELDS)),
    ],
    ids=[
        *sorted(STRING_ARRAY_FIELDS),
        *sorted(STRING_FIELDS),
        *sorted(OBJECT_FIELDS),
        *sorted(INTEGER_FIELDS),
        *sorted(BOOLEAN_FIELDS),
    ],
)
def test_every_known_field_is_type_checked(field: str, good: Any, bad: Any) -> None:
    check_types({field: good})
    with pytest.raises(InvalidClientMetadata) as info:
        check_types({field: bad})
    assert info.value.rule == "metadata.invalid_type"
    assert info.value.description.startswith(f'"{field}" must be ')


@pytest.mark.parametrize("field", sorted(LOCALIZABLE_FIELDS), ids=sorted(LOCALIZABLE_FIELDS))
def test_localized_variants_are_type_checked(field: str) -> None:
    check_types({f"{field}#de": "x"})
    with pytest.raises(InvalidClientMetadata):
        check_types({f"{field}#de": 1})


@pytest.mark.parametrize(
    "key",
    ["redirect_uris#en", "grant_types#x", "jwks#de", "scope#fr"],
    ids=["redirect-uris", "grant-types", "jwks", "scope"],
)
def test_language_tag_on_a_non_localizable_field_is_an_unknown_field(key: str) -> None:
    assert parse_body(json.dumps({key: 12}).encode()) == {key: 12}


def test_empty_string_arrays_are_well_typed() -> None:
    check_types({"redirect_uris": [], "contacts": []})


# --- serialize -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "metadata",
    [
        {},
        {"client_name": "Caf\u00e9 \u65e5\u672c\u8a9e \U0001f600"},
        {"client_name#ja-Jpan-JP": "\u30af\u30e9\u30a4\u30a2\u30f3\u30c8"},
        {"redirect_uris": ["https://a.example/cb?x=1&y=\u00fc"], "n": 1, "f": 0.5, "b": None},
        {"jwks": {"keys": [{"kty": "EC", "x": "AbC-_"}]}, "quote": 'a"b\\c\n'},
    ],
    ids=["empty", "unicode-name", "localized", "mixed-types", "escapes"],
)
def test_serialize_round_trips(metadata: dict[str, Any]) -> None:
    payload = serialize(metadata)
    assert isinstance(payload, bytes)
    assert json.loads(payload.decode("utf-8")) == metadata
    assert parse_body(payload) == metadata


def test_serialize_is_compact_utf8() -> None:
    assert serialize({"client_name": "\u00e9", "a": [1, 2]}) == (
        '{"client_name":"\u00e9","a":[1,2]}'.encode()
    )


def test_serialize_refuses_a_lone_surrogate() -> None:
    with pytest.raises(InvalidClientMetadata) as info:
        serialize({"client_name": "\ud800"})
    assert info.value.rule == "request.invalid_json"
    assert info.value.description == "the request body contains an unpaired UTF-16 surrogate"
