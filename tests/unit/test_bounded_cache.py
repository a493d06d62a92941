"""Pure functions of client text are remembered for short texts only."""

from __future__ import annotations

import hashlib

from gateway.bounded_cache import LONGEST, short_text_cache
from gateway.ratelimit import keys
from gateway.registry import store
from gateway.unicode.confusables import identity_keys

#: What a long name's identity key can become (NFKC of U+FDFA is 18 characters).
LONG = "name:" + "\ufdfa" * 300


def test_a_short_text_is_computed_once() -> None:
    calls: list[str] = []

    @short_text_cache
    def double(prefix: str, text: str | None) -> str:
        calls.append(f"{prefix}{text}")
        return f"{prefix}{text}{text}"

    assert [double("a", "x"), double("a", "x"), double("a", None), double("a", None)] == [
        "axx",
        "axx",
        "aNoneNone",
        "aNoneNone",
    ]
    assert calls == ["ax", "aNone"]
    assert double.cache_info().currsize == 2


def test_a_long_text_is_computed_every_time_and_never_kept() -> None:
    calls: list[int] = []

    @short_text_cache
    def length(text: str) -> int:
        calls.append(len(text))
        return len(text)

    text = "x" * (LONGEST + 1)
    assert [length(text), length(text), length("x" * LONGEST)] == [LONGEST + 1] * 2 + [LONGEST]
    assert calls == [LONGEST + 1, LONGEST + 1, LONGEST]
    assert length.cache_info().currsize == 1


def test_counter_keys_and_identity_keys_keep_no_long_text() -> None:
    sizes = [f.cache_info().currsize for f in (keys.storage_key, store.count_key, identity_keys)]
    for index in range(50):
        value = f"{LONG}{index}"
        digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]
        assert keys.storage_key("t", "per-vendor", 0, value) == f"rl:t:per-vendor:0:{digest}"
        assert store.count_key(None, value) == f"reg-count::v:{digest}"
        assert identity_keys(value) == identity_keys.__wrapped__(value)
    assert [
        f.cache_info().currsize for f in (keys.storage_key, store.count_key, identity_keys)
    ] == (sizes)
