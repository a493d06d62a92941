"""JSON on the request path: orjson where it gives the same answer, the standard library
where it does not.

A registration serializes JSON several times before it is answered (the judged metadata
sent upstream, the size of what the audit event keeps, the tracked metadata, the
registry entry) and parses the upstream's answer.  orjson does each in a twentieth of the time
of :mod:`json`, but differs from it at the edges, so each edge falls back to :mod:`json`:

* integers beyond 64 bits and strings with an unpaired surrogate, which orjson refuses
  (the standard library encodes the integer; a surrogate, which UTF-8 cannot carry, is
  written as an ASCII escape, or refused where the bytes must be UTF-8: what is sent
  upstream);
* ``NaN`` and the infinities, which orjson writes as ``null`` (valid JSON, unlike
  :mod:`json`'s ``NaN``): where a value must not change, ``allow_nan=False`` refuses them
  as :mod:`json` does.

Audit lines keep :mod:`json`'s spacing and ASCII escapes (:mod:`gateway.audit.sink`).
orjson reads an integer beyond 64 bits as a float, so an answer with a float in it is
read again by :mod:`json`.  Both encoders write the compact form (``{"a":1}``) in
insertion order.  Parsing only ever uses orjson for the upstream's answers
(:func:`loads`); request bodies keep the strict parser of :mod:`gateway.oauth.body`
(duplicate members refused), which orjson cannot be.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import orjson

_COMPACT = (",", ":")
_SORTED = orjson.OPT_SORT_KEYS


def dumps(
    value: Any,
    *,
    default: Callable[[Any], Any] | None = None,
    allow_nan: bool = True,
    sort_keys: bool = False,
    strict_utf8: bool = False,
) -> bytes:
    """``value`` as compact UTF-8 JSON, as ``json.dumps(..., ensure_ascii=False)`` would
    write it, encoded.  A string with an unpaired surrogate cannot be UTF-8: then the
    whole value is written with ASCII escapes (``\\ud800``, as ``json.dumps`` writes by
    default), or with ``strict_utf8`` refused with ``UnicodeEncodeError``.  A non-finite
    float is written as ``null`` (or ``NaN`` beside a big integer), or with
    ``allow_nan=False`` refused with ``ValueError``, as :mod:`json` refuses it;
    ``sort_keys``: every object's members in order of their names."""
    try:
        out = orjson.dumps(value, default=default, option=_SORTED if sort_keys else None)
    except TypeError:  # orjson.JSONEncodeError: a big integer, a surrogate, a key type
        try:
            return _stdlib(value, default, allow_nan=allow_nan, sort_keys=sort_keys)
        except UnicodeEncodeError:
            if strict_utf8:
                raise
            return _stdlib(value, default, allow_nan=allow_nan, sort_keys=sort_keys, ascii=True)
    if not allow_nan and b"null" in out and _any_float(value, _is_non_finite):
        raise ValueError("Out of range float values are not JSON compliant")
    return out


def loads(data: bytes | str) -> Any:
    """Parse JSON leniently, as :func:`json.loads` does (``ValueError`` when it is not
    JSON; ``RecursionError`` when it nests too deep)."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:  # NaN, a lone surrogate, deep nesting, UTF-16...
        return json.loads(data)
    if _any_float(value, _is_float):  # orjson reads an integer beyond 64 bits as a float
        return json.loads(data)
    return value


def _stdlib(
    value: Any,
    default: Callable[[Any], Any] | None,
    *,
    allow_nan: bool,
    sort_keys: bool = False,
    ascii: bool = False,
) -> bytes:
    text = json.dumps(
        value,
        default=default,
        ensure_ascii=ascii,
        separators=_COMPACT,
        allow_nan=allow_nan,
        sort_keys=sort_keys,
    )
    return text.encode("utf-8")


def _is_float(item: float) -> bool:
    return True


def _is_non_finite(item: float) -> bool:
    return not math.isfinite(item)


def _any_float(value: Any, test: Callable[[float], bool]) -> bool:
    """Whether a float for which ``test`` holds is anywhere in ``value``."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if test(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return False
