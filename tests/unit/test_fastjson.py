"""orjson on the request path gives the standard library's answers, edges included."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway import fastjson

# JSON values without floats (whose shortest forms the two libraries may spell apart:
# ``1e+16`` and ``1e16``) and without surrogates (tested apart).
_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=20,
)


def _stdlib(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@given(_values)
def test_dumps_writes_what_json_writes(value: object) -> None:
    assert fastjson.dumps(value) == _stdlib(value).encode("utf-8")


@given(_values)
def test_loads_reads_what_json_reads(value: object) -> None:
    text = json.dumps(value)
    assert fastjson.loads(text.encode("utf-8")) == json.loads(text)


def test_integers_beyond_64_bits_are_written_as_json_writes_them() -> None:
    value = {"n": 2**80, "m": -(2**64)}
    assert fastjson.dumps(value) == b'{"n":1208925819614629174706176,"m":-18446744073709551616}'
    assert fastjson.loads(fastjson.dumps(value)) == value


def test_an_unpaired_surrogate_is_escaped_or_refused() -> None:
    value = {"client_name": "\ud800", "n": "caf\u00e9", "big": 2**70}
    out = fastjson.dumps(value)
    assert out.isascii() and json.loads(out) == value  # an upstream's answer is relayed
    with pytest.raises(UnicodeEncodeError):  # what goes upstream must be UTF-8
        fastjson.dumps({"client_name": "\ud800"}, strict_utf8=True)


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_refused_where_a_value_must_not_change(number: float) -> None:
    value = {"a": [None, {"b": number}]}
    with pytest.raises(ValueError):
        fastjson.dumps(value, allow_nan=False)
    with pytest.raises(ValueError):
        fastjson.dumps({"big": 2**70, "b": number}, allow_nan=False)
    # Elsewhere (sizes, log lines) they are written as valid JSON.
    assert json.loads(fastjson.dumps(value)) == {"a": [None, {"b": None}]}


def test_null_alone_is_still_null() -> None:
    assert fastjson.dumps({"a": None}, allow_nan=False) == b'{"a":null}'


def test_default_is_used_for_other_types() -> None:
    class Odd:
        def __str__(self) -> str:
            return "odd"

    assert fastjson.dumps({"x": Odd()}, default=str) == b'{"x":"odd"}'
    assert fastjson.dumps({"x": Odd(), "n": 2**70}, default=str) == (
        b'{"x":"odd","n":1180591620717411303424}'
    )
    with pytest.raises(TypeError):
        fastjson.dumps({"x": Odd()})


@pytest.mark.parametrize(
    "text",
    [b"NaN", b'{"a": Infinity}', b"[1e999]", b'"\\ud800"', b"123456789012345678901234567890"],
)
def test_loads_accepts_what_json_accepts_and_orjson_does_not(text: bytes) -> None:
    got = fastjson.loads(text)
    want = json.loads(text)
    assert repr(got) == repr(want)


@pytest.mark.parametrize("text", [b"", b"{", b"[1,]", b"\xff"])
def test_loads_refuses_what_is_not_json(text: bytes) -> None:
    with pytest.raises(ValueError):
        fastjson.loads(text)


def test_loads_of_deep_nesting_raises_rather_than_crashes() -> None:
    with pytest.raises((ValueError, RecursionError)):
        fastjson.loads(b"[" * 100_000 + b"]" * 100_000)
