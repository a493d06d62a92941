"""Redirect URI patterns: the policy language, compiled once and indexed for matching.

A pattern is a redirect URI in which ``*`` may stand for something, and nothing else:

* ``*`` inside a path segment stands for a run of one or more characters other than ``/``
  and ``?``; it never crosses a segment boundary, so ``https://my.example.com/*`` does not
  match ``https://my.example.com/oauth/callback`` (the ``fnmatch`` behaviour, where ``*``
  crosses ``/`` and ``?``, is the published bypass this language exists to avoid);
* ``*.`` as the whole leftmost host label stands for exactly one label;
* ``:*`` stands for any port, ``?*`` for any query or none;
* for private-use schemes (RFC 8252 §7.1), ``*`` in the authority or a path segment stands
  for one or more characters other than ``/``, ``?`` and ``#``.

Patterns are normalized and checked by the very parser that reads redirect URIs
(:func:`gateway.uri.parse.parse_parts`), so a pattern and a URI that look the same are the
same.  A pattern that could never match a URI that passes the hygiene rules (``http`` on a
public host, a fragment, ``javascript:``) is a load error, not a silent no-op.

Why wildcards at all, given that RFC 9700 §2.1 asks authorization servers for exact matching?
These patterns decide which redirect URIs a client may *register*; the authorization server
still compares the registered URI exactly at the authorization endpoint.  Loopback ports are
the one variable part RFC 8252 §7.3 requires.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from gateway.uri.parse import (
    LOOPBACK_DENIED,
    MALFORMED,
    RedirectURI,
    URIParts,
    URIRefusal,
    parse_parts,
)

#: A compiled glob: the literal pieces between ``*`` signs (one piece: no wildcard).
Glob = tuple[str, ...]


class LoopbackMode(StrEnum):
    """How loopback redirect URIs (``127.0.0.1``, ``[::1]``, ``localhost``) are treated.

    RFC 8252 §7.3 requires authorization servers to accept any port on loopback redirect
    URIs, because native apps bind an ephemeral port at run time; ``ANY_PORT`` follows it.
    ``EXACT`` compares ports like any other host (a pattern may still say ``:*``).
    ``DENY`` refuses every loopback redirect URI, for deployments with no native clients.
    """

    ANY_PORT = "any_port"
    EXACT = "exact"
    DENY = "deny"


class PatternError(ValueError):
    """A redirect URI pattern that cannot be loaded; the message says what and why."""

    def __init__(self, source: str, problem: str, rule: str | None = None) -> None:
        self.source = source
        self.problem = problem
        self.rule = rule
        shown = source if len(source) <= 200 else source[:200] + "..."
        super().__init__(f"redirect URI pattern {shown!r}: {problem}")

    def __reduce__(self) -> tuple[type[PatternError], tuple[str, str, str | None]]:
        return (type(self), (self.source, self.problem, self.rule))


@dataclass(frozen=True, slots=True)
class Pattern:
    """One compiled pattern.

    ``host`` is the exact host (or private-use authority, ``None`` when the pattern has none);
    for a ``*.`` pattern it is the parent domain that the one wildcard label precedes.
    ``path_globs`` is ``None`` when the path has no ``*`` (compared as a string), otherwise
    one :data:`Glob` per ``/``-separated segment.  ``query`` is ``None`` when the pattern has
    no ``?`` (the URI must have no query either).
    """

    source: str
    label: str
    normalized: str
    scheme: str
    host: str | None
    host_wildcard: bool
    host_glob: Glob | None
    port: int | None
    any_port: bool
    path: str
    path_globs: tuple[Glob, ...] | None
    query: str | None
    any_query: bool
    is_loopback: bool
    is_web: bool

    def matches(self, uri: RedirectURI, loopback: LoopbackMode = LoopbackMode.ANY_PORT) -> bool:
        """Whether ``uri`` (already parsed, so it passed every hygiene rule) matches."""
        if uri.scheme != self.scheme:
            return False
        if loopback is LoopbackMode.DENY and uri.is_loopback:
            return False
        if not self._host_matches(uri):
            return False
        if self.is_web and not self.any_port:
            any_loopback_port = self.is_loopback and loopback is LoopbackMode.ANY_PORT
            if not any_loopback_port and uri.port != self.port:
                return False
        if self.path_globs is None:
            if uri.path != self.path:
                return False
        else:
            segments = uri.path.split("/")
            if len(segments) != len(self.path_globs):
                return False
            if not all(map(glob_match, self.path_globs, segments)):
                return False
        return self.any_query or uri.query == self.query

    def _host_matches(self, uri: RedirectURI) -> bool:
        host = uri.host
        if self.host_glob is not None:
            return host is not None and glob_match(self.host_glob, host)
        if not self.host_wildcard:
            return host == self.host
        if host is None or host.startswith("["):
            return False
        first, dot, parent = host.partition(".")
        return bool(first) and bool(dot) and parent == self.host


@dataclass(frozen=True, slots=True)
class PatternMatch:
    """Which pattern allowed (or blocked) a URI, for the decision and the audit log."""

    pattern: str
    label: str


def compile_pattern(source: str, label: str) -> Pattern:
    """Parse, check and compile one pattern; raises :class:`PatternError`.

    ``label`` travels with the pattern into every :class:`PatternMatch` (for instance
    ``managed:claude`` or ``custom``), so a decision can say which list allowed a URI.
    """
    if not isinstance(source, str):
        raise PatternError(repr(source), "a pattern must be a string")
    if "**" in source:
        raise PatternError(
            source,
            "'**' has no special meaning here: '*' already matches within one path segment "
            "and nothing matches across '/'; list each path depth as its own pattern",
        )
    parts = parse_parts(source, pattern=True)
    if isinstance(parts, URIRefusal):
        description = parts.description.removeprefix(repr(source)).strip()
        if parts.rule == MALFORMED:
            raise PatternError(source, description, parts.rule)
        raise PatternError(
            source,
            f"{description}; such redirect URIs are always refused ({parts.rule}), so this "
            "pattern could never match",
            parts.rule,
        )
    if parts.is_web:
        host_glob = None
    else:
        has_star = parts.host is not None and "*" in parts.host
        host_glob = _compile_glob(parts.host) if has_star and parts.host is not None else None
    path_globs = (
        tuple(_compile_glob(segment) for segment in parts.path.split("/"))
        if "*" in parts.path
        else None
    )
    return Pattern(
        source=source,
        label=label,
        normalized=_render(parts),
        scheme=parts.scheme,
        host=parts.host,
        host_wildcard=parts.host_wildcard,
        host_glob=host_glob,
        port=parts.port,
        any_port=parts.any_port,
        path=parts.path,
        path_globs=path_globs,
        query=None if parts.query == "*" else parts.query,
        any_query=parts.query == "*",
        is_loopback=parts.is_loopback,
        is_web=parts.is_web,
    )


def _render(parts: URIParts) -> str:
    """The normalized pattern text, for messages and ``explain`` output."""
    scheme = parts.scheme
    query = "" if parts.query is None else f"?{parts.query}"
    if parts.is_web:
        host = f"*.{parts.host}" if parts.host_wildcard else parts.host
        port = ":*" if parts.any_port else ("" if parts.port is None else f":{parts.port}")
        return f"{scheme}://{host}{port}{parts.path}{query}"
    authority = "" if parts.host is None else f"//{parts.host}"
    return f"{scheme}:{authority}{parts.path}{query}"


def _compile_glob(text: str) -> Glob:
    return tuple(text.split("*"))


def glob_match(pieces: Glob, text: str) -> bool:
    """Whether ``text`` matches a glob whose every ``*`` stands for one or more characters.

    Callers pass one path segment or one authority, which contain no ``/``, ``?`` or ``#``,
    so the ``*`` cannot cross them.  No regular expressions: compiling thousands of regexes
    at load time is slow, and this greedy scan is exact because every ``*`` is a "one or
    more" wildcard (placing each literal piece as early as possible leaves the most room for
    the rest).
    """
    if len(pieces) == 1:
        return text == pieces[0]
    first, last = pieces[0], pieces[-1]
    stars = len(pieces) - 1
    if len(text) < sum(map(len, pieces)) + stars:
        return False
    if not text.startswith(first) or not text.endswith(last):
        return False
    position, end = len(first), len(text) - len(last)
    for middle in pieces[1:-1]:
        found = text.find(middle, position + 1, end - 1)
        if found < 0:
            return False
        position = found + len(middle)
    return end - position >= 1


def loopback_refusal(uri: RedirectURI, mode: LoopbackMode) -> URIRefusal | None:
    """The refusal for a loopback redirect URI under ``LoopbackMode.DENY``, else ``None``.

    Checked before any matching, so that no pattern (managed or custom) can let a loopback
    URI through when the policy says loopback redirects are not wanted.
    """
    if mode is LoopbackMode.DENY and uri.is_loopback:
        return URIRefusal(
            rule=LOOPBACK_DENIED,
            description=(
                f"{uri.raw[:200]!r} is a loopback redirect URI, and this policy denies "
                "loopback redirects (RFC 8252 §7.3 native-app callbacks are not accepted)"
            ),
        )
    return None


@dataclass(slots=True)
class _Bucket:
    """Patterns sharing a lookup key, split by whether their path is literal."""

    by_path: dict[str, list[tuple[int, Pattern]]] = field(default_factory=dict)
    globbed: list[tuple[int, Pattern]] = field(default_factory=list)

    def add(self, index: int, pattern: Pattern) -> None:
        if pattern.path_globs is None:
            self.by_path.setdefault(pattern.path, []).append((index, pattern))
        else:
            self.globbed.append((index, pattern))


class PatternSet:
    """Indexed by (scheme, host) so that cost does not grow with the number of patterns.

    * exact-host http(s) patterns and private-use patterns with a literal authority (or none)
      are keyed by ``(scheme, host)``;
    * ``*.parent`` patterns are keyed by ``(scheme, parent)`` and looked up with the URI's
      host minus its first label;
    * private-use patterns with ``*`` in their authority are keyed by scheme alone.

    Inside a bucket, patterns with a literal path are keyed by that path.  A lookup therefore
    reads at most a handful of short lists, and returns the earliest-inserted pattern that
    matches, exactly as a linear scan in insertion order would.
    """

    __slots__ = ("_authority_globs", "_exact", "_loopback", "_patterns", "_wildcard_hosts")

    def __init__(
        self, patterns: Iterable[Pattern], loopback: LoopbackMode = LoopbackMode.ANY_PORT
    ) -> None:
        self._loopback = loopback
        self._patterns: tuple[Pattern, ...] = tuple(patterns)
        self._exact: dict[tuple[str, str | None], _Bucket] = {}
        self._wildcard_hosts: dict[tuple[str, str | None], _Bucket] = {}
        self._authority_globs: dict[str, _Bucket] = {}
        for index, pattern in enumerate(self._patterns):
            if pattern.host_glob is not None:
                bucket = self._authority_globs.setdefault(pattern.scheme, _Bucket())
            elif pattern.host_wildcard:
                bucket = self._wildcard_hosts.setdefault((pattern.scheme, pattern.host), _Bucket())
            else:
                bucket = self._exact.setdefault((pattern.scheme, pattern.host), _Bucket())
            bucket.add(index, pattern)

    @property
    def loopback(self) -> LoopbackMode:
        return self._loopback

    def refusal(self, uri: RedirectURI) -> URIRefusal | None:
        """``redirect_uri.loopback_denied`` for a loopback URI when the mode is ``DENY``."""
        return loopback_refusal(uri, self._loopback)

    def match(self, uri: RedirectURI) -> PatternMatch | None:
        """The first pattern, in insertion order, that matches ``uri``; ``None`` if none does.

        Under ``LoopbackMode.DENY`` a loopback URI matches nothing (see :meth:`refusal`).
        """
        if self._loopback is LoopbackMode.DENY and uri.is_loopback:
            return None
        buckets = [self._exact.get((uri.scheme, uri.host))]
        if uri.is_web:
            host = uri.host or ""
            if not host.startswith("["):
                parent = host.partition(".")[2]
                if parent:
                    buckets.append(self._wildcard_hosts.get((uri.scheme, parent)))
        else:
            buckets.append(self._authority_globs.get(uri.scheme))
        best: tuple[int, Pattern] | None = None
        for bucket in buckets:
            if bucket is None:
                continue
            for candidates in (bucket.by_path.get(uri.path), bucket.globbed):
                if not candidates:
                    continue
                for index, pattern in candidates:
                    if best is not None and index >= best[0]:
                        break
                    if pattern.matches(uri, self._loopback):
                        best = (index, pattern)
                        break
        if best is None:
            return None
        return PatternMatch(pattern=best[1].source, label=best[1].label)

    def __len__(self) -> int:
        return len(self._patterns)

    def __iter__(self) -> Iterator[Pattern]:
        return iter(self._patterns)

    def __repr__(self) -> str:
        return f"PatternSet({len(self._patterns)} patterns, loopback={self._loopback.value})"
