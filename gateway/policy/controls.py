"""Reading the policy's controls around the decision: ``rate_limits``, ``on_storage_error``
and ``initial_access_tokens`` (RFC 7591 §3).

They are policy, not deployment settings, so that each tenant's policy carries its own and
``check``/``explain`` see them; the engine itself never reads them (it stays pure), the
gateway applies them around its decision (:mod:`gateway.ratelimit`, :mod:`gateway.tokens`).
Rate strings use the `limits` library's syntax (``20/hour;100/day``, ``5 per 2 minutes``)
and are parsed with it at load.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import limits

from gateway.config.reader import Reader, as_bool, as_choice, as_int, as_nonempty_str
from gateway.config.yamlsource import KeyPath
from gateway.policy import spec
from gateway.policy.model import (
    OnStorageError,
    Policy,
    RateCount,
    RateKey,
    RateRule,
    RateWindow,
    TokenEntry,
    TokenPolicy,
)

_NAME_RE = re.compile(spec.NAME_PATTERN)
_SHA256_RE = re.compile(spec.SHA256_PATTERN)
_RULE_KEYS = spec.RATE_RULE.names
_TOKENS_KEYS = spec.TOKENS.names
_TOKEN_KEYS = spec.TOKEN.names
MAX_WINDOW_SECONDS = spec.MAX_WINDOW_SECONDS
MAX_RULES = spec.MAX_RULES
MAX_TOKENS = spec.MAX_TOKENS

NestedLoader = Callable[[Path, KeyPath], Policy | None]


def as_name(value: Any) -> str:
    text = as_nonempty_str(value)
    if not _NAME_RE.match(text):
        raise ValueError(
            f"{text!r} is not a name: use lowercase letters, digits, '-' and '_' "
            "(at most 64, starting with a letter or digit)"
        )
    return text


def as_rate(value: Any) -> tuple[RateWindow, ...]:
    """``20/hour;100/day`` -> windows, by the `limits` library's parser."""
    text = as_nonempty_str(value)
    try:
        items = limits.parse_many(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a rate: write e.g. 20/hour, 100/day, 5 per 2 minutes, "
            "several separated by ';'"
        ) from None
    windows = []
    for item in items:
        seconds = int(item.get_expiry())
        if item.amount < 1:
            raise ValueError(f"{text!r}: a limit must allow at least 1 per window")
        if seconds > MAX_WINDOW_SECONDS:
            raise ValueError(f"{text!r}: the longest window is 31 days")
        windows.append(RateWindow(int(item.amount), seconds))
    return tuple(windows)


def as_instant(value: Any) -> float:
    """An ISO 8601 date-time with a time zone (``2027-06-30T00:00:00Z``), as epoch seconds.

    YAML reads an unquoted timestamp itself (aware when it names a zone); a time without a
    zone is refused, since whose midnight it means is a guess."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        raise ValueError("must be a date-time, e.g. 2027-06-30T00:00:00Z, not a date")
    else:
        text = as_nonempty_str(value).strip()
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ValueError(f"{text!r} is not a date-time such as 2027-06-30T00:00:00Z") from None
    if moment.tzinfo is None:
        raise ValueError("must name its time zone, e.g. 2027-06-30T00:00:00Z")
    return moment.timestamp()


def as_sha256(value: Any) -> bytes:
    text = as_nonempty_str(value).strip()
    if not _SHA256_RE.match(text):
        raise ValueError(
            "must be the token's SHA-256 in hex (64 characters; dcr-gateway hash-token makes it)"
        )
    return bytes.fromhex(text)


def _entries(
    r: Reader, value: Any, path: KeyPath, fields: frozenset[str], limit: int
) -> Iterator[tuple[KeyPath, dict[str, Any]]]:
    """Each mapping of a list of at most ``limit`` (key path, mapping); a list that is not
    one, an entry that is no mapping, and one too many entries are problems."""
    if value is None:
        return
    what = ", ".join(sorted(fields))
    if not isinstance(value, list):
        r.problem(path, f"must be a list of mappings ({what})")
        return
    if len(value) > limit:
        r.problem(path, f"at most {limit} entries")
    for index, item in enumerate(value[:limit]):
        if not isinstance(item, dict):
            r.problem((*path, index), f"must be a mapping ({what})")
            continue
        yield (*path, index), r.section(item, (*path, index), fields)


def _unique(r: Reader, seen: set[Any], value: Any, path: KeyPath, message: str) -> None:
    if value and value in seen:
        r.problem(path, message)
    seen.add(value)


def read_rate_limits(r: Reader, top: dict[str, Any]) -> tuple[RateRule, ...]:
    rules: list[RateRule] = []
    names: set[str] = set()
    for ip, section in _entries(r, top.get("rate_limits"), ("rate_limits",), _RULE_KEYS, MAX_RULES):
        name = r.require(section, ip, "name", as_name, "")
        _unique(r, names, name, (*ip, "name"), f"rule name {name!r} is used twice")
        key = r.require(section, ip, "key", as_choice(*(k.value for k in RateKey)), "")
        windows = r.require(section, ip, "limit", as_rate, ())
        count = r.get(
            section, ip, "count", as_choice(*(c.value for c in RateCount)), RateCount.ATTEMPTS
        )
        if name and key and windows:
            rules.append(
                RateRule(name, RateKey(key), windows, RateCount(count), str(section["limit"]))
            )
    return tuple(rules)


def read_on_storage_error(r: Reader, top: dict[str, Any]) -> OnStorageError:
    choice = r.get(
        top,
        (),
        "on_storage_error",
        as_choice(*(o.value for o in OnStorageError)),
        OnStorageError.FAIL_CLOSED.value,
    )
    return OnStorageError(choice)


def read_tokens(
    r: Reader, top: dict[str, Any], base_dir: Path, load_nested: NestedLoader
) -> TokenPolicy:
    path: KeyPath = ("initial_access_tokens",)
    section = r.section(top.get("initial_access_tokens"), path, _TOKENS_KEYS)
    required = r.get(section, path, "required", as_bool, False)
    entries: list[TokenEntry] = []
    names: set[str] = set()
    digests: set[bytes] = set()
    tp: KeyPath = (*path, "tokens")
    for ip, token in _entries(r, section.get("tokens"), tp, _TOKEN_KEYS, MAX_TOKENS):
        name = r.require(token, ip, "name", as_name, "")
        _unique(r, names, name, (*ip, "name"), f"token name {name!r} is used twice")
        digest = r.require(token, ip, "sha256", as_sha256, b"")
        _unique(r, digests, digest, (*ip, "sha256"), "the same token is listed twice")
        expires = r.get(token, ip, "expires", as_instant, None)
        max_uses = r.get(token, ip, "max_uses", as_int(1, 10**9), None)
        policy: Policy | None = None
        file_name = r.get(token, ip, "policy", as_nonempty_str, "")
        if file_name:
            policy = load_nested(base_dir / file_name, (*ip, "policy"))
        if name and digest:
            entries.append(TokenEntry(name, digest, expires, max_uses, policy))
    return TokenPolicy(required=required, tokens=tuple(entries))
