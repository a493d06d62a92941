"""Typed reading of YAML data with every error collected, not just the first.

Settings and policy loaders both use :class:`Reader`: a loader asks for each key with a
parser, and a bad value becomes a :class:`~gateway.config.yamlsource.Problem` carrying its key
path and ``file:line``, while loading goes on so that ``dcr-gateway check`` can report all
of them at once (the habit of oauth2-proxy's options validation).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Collection, Sequence
from typing import Any, TypeVar

from yarl import URL

from gateway.config.yamlsource import Document, KeyPath, Problem, boolean_hint, format_path

T = TypeVar("T")
Parser = Callable[[Any], T]

#: What :func:`as_duration` reads (also the policy schema's pattern for durations).
DURATION_PATTERN = r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$"
_DURATION_RE = re.compile(DURATION_PATTERN)
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE_RE = re.compile(r"^\s*(\d+)\s*(b|kb|kib|mb|mib|gb|gib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "kib": 1024,
    "mb": 1000**2,
    "mib": 1024**2,
    "gb": 1000**3,
    "gib": 1024**3,
}


def _type_name(value: object) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "empty",
    }.get(type(value), type(value).__name__)


def as_str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, not {_type_name(value)}")
    return value


def as_nonempty_str(value: Any) -> str:
    text = as_str(value)
    if not text.strip():
        raise ValueError("must not be empty")
    return text


def as_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, not {value!r}")
    return value


def as_int(minimum: int | None = None, maximum: int | None = None) -> Parser[int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be a whole number, not {_type_name(value)}")
        if minimum is not None and value < minimum:
            raise ValueError(f"must be at least {minimum}")
        if maximum is not None and value > maximum:
            raise ValueError(f"must be at most {maximum}")
        return value

    return parse


def as_duration(value: Any) -> float:
    """Seconds from ``"2s"``, ``"150ms"``, ``"5m"``, ``"1h"``, ``"30d"`` or a bare number."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 2s, 500ms, 5m")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION_RE.match(str(value)) if isinstance(value, str) else None
        if match is None:
            raise ValueError(f"must be a duration such as 2s, 500ms, 5m, not {value!r}")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if not math.isfinite(seconds):
        raise ValueError("must be a finite duration")
    if seconds <= 0:
        raise ValueError("must be greater than zero")
    return seconds


def as_size(value: Any) -> int:
    """Bytes from ``65536``, ``"64KiB"``, ``"1MB"``."""
    if isinstance(value, bool):
        raise ValueError("must be a size such as 65536 or 64KiB")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE_RE.match(value) if isinstance(value, str) else None
        if match is None:
            raise ValueError(f"must be a size such as 65536 or 64KiB, not {value!r}")
        size = int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()]
    if size <= 0:
        raise ValueError("must be greater than zero")
    return size


def as_choice(*choices: str) -> Parser[str]:
    def parse(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}; got {value!r}")
        return str(value)

    return parse


def as_http_url(value: Any) -> URL:
    """An absolute http(s) URL without query, fragment or userinfo."""
    text = as_nonempty_str(value)
    try:
        url = URL(text)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"is not a URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"must be an absolute http:// or https:// URL, not {text!r}")
    if "@" in (url.raw_authority or "") or url.query_string or url.fragment or "?" in text:
        raise ValueError("must not carry credentials, a query or a fragment")
    return url


def did_you_mean(word: object, known: Collection[str]) -> str | None:
    """``did you mean 'block'?`` for a misspelt key, when one known key is close enough."""
    if not isinstance(word, str):
        return None
    close = difflib.get_close_matches(word, sorted(known), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


class Reader:
    """Reads sections of one document, collecting problems with their locations."""

    def __init__(self, document: Document, problems: list[Problem]) -> None:
        self.document = document
        self.problems = problems

    def problem(self, path: KeyPath, message: str, hint: str | None = None) -> None:
        """Record a problem at ``path``; a value YAML read as a boolean from a word such as
        ``no`` or ``on`` gets the hint that explains it (when no other hint applies)."""
        if hint is None and path in self.document.booleans:
            hint = boolean_hint(self.document.booleans[path])
        self.problems.append(
            Problem(format_path(path), message, self.document.location(path), hint)
        )

    def mapping(self, value: Any, path: KeyPath) -> dict[str, Any]:
        """A mapping with keys of the author's choosing (realm names); empty when absent."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(path, f"must be a mapping, not {_type_name(value)}")
            return {}
        return value

    def section(self, value: Any, path: KeyPath, known: Collection[str]) -> dict[str, Any]:
        """A mapping whose keys must all be in ``known``; empty when absent or wrong."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(path, f"must be a mapping, not {_type_name(value)}")
            return {}
        for key in value:
            if key not in known:
                names = ", ".join(sorted(known))
                self.problem(
                    (*path, key), f"unknown key (known keys: {names})", did_you_mean(key, known)
                )
        return value

    def get(
        self,
        section: dict[str, Any],
        path: KeyPath,
        key: str,
        parse: Parser[T],
        default: T,
    ) -> T:
        """``parse(section[key])``, or ``default`` when absent or invalid."""
        if key not in section:
            return default
        try:
            return parse(section[key])
        except ValueError as exc:
            self.problem((*path, key), str(exc))
            return default

    def require(
        self, section: dict[str, Any], path: KeyPath, key: str, parse: Parser[T], default: T
    ) -> T:
        """Like :meth:`get`, but absence is a problem too."""
        if key not in section:
            self.problem((*path, key), "is required")
            return default
        return self.get(section, path, key, parse, default)

    def items(self, value: Any, path: KeyPath, parse: Parser[T]) -> list[T]:
        """Every valid element of a list; each invalid one is its own problem."""
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(path, f"must be a list, not {_type_name(value)}")
            return []
        out: list[T] = []
        for index, item in enumerate(value):
            try:
                out.append(parse(item))
            except ValueError as exc:
                self.problem((*path, index), str(exc))
        return out

    def str_list(
        self, section: dict[str, Any], path: KeyPath, key: str, default: Sequence[str]
    ) -> tuple[str, ...]:
        if key not in section:
            return tuple(default)
        return tuple(self.items(section[key], (*path, key), as_nonempty_str))
