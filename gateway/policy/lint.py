"""Warnings about a policy that loads, but probably does not do what its author meant.

The loader refuses what is wrong (:mod:`gateway.policy.loader`); these are the mistakes that
still make a valid policy, which ``dcr-gateway check`` reports as warnings (errors with
``--strict``):

* **dead patterns**: a pattern that can never match anything.  Under ``loopback: deny`` a
  loopback pattern (every loopback URI is refused first); an ``allow`` pattern whose every
  match is blocked by a ``block`` pattern (the block list is checked first); a pattern every
  URI of which the strict redirect URI parser refuses; a ``cimd.allow`` pattern that no
  client_id URL could match (a metadata document URL is https on a public host, with a path:
  draft-ietf-oauth-client-id-metadata-document §3);
* **shadowed patterns**: a pattern whose every match is already matched by another one in
  the same list (or, for the custom list, by a selected managed entry, whose label then
  appears in ``matched``), so removing it changes nothing;
* **stale managed entries**: a selected managed entry whose facts (its ``verified`` date)
  are more than a year old: its client may have moved its redirect URIs since.

Pure: the date to compare with is a parameter, so results do not depend on when tests run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from gateway.config.yamlsource import Document, KeyPath, Problem, format_path
from gateway.policy.model import Policy
from gateway.policy.patterns import LoopbackMode, Pattern, glob_match
from gateway.uri.parse import RedirectURI, URIRefusal, parse_metadata_url, parse_redirect_uri

#: Managed facts older than this are worth checking again.
STALE_AFTER_DAYS = 365
#: Stands for the text a ``*`` of the covered pattern matches: no literal piece contains it,
#: so only a ``*`` of the covering pattern can match it (see :func:`covers`).
_ANY = "\x00"
#: What each ``*`` is replaced by to build URIs a pattern matches.
_SAMPLES = ("x", "a1")


@dataclass(frozen=True, slots=True)
class _Listed:
    """A pattern with the key path it was written at (``None`` for managed patterns)."""

    pattern: Pattern
    path: KeyPath | None


def lint(policy: Policy, today: date, document: Document | None = None) -> list[Problem]:
    """Every warning about ``policy``, each at its key path (and ``file:line`` when the
    policy's ``document`` is given)."""
    doc = document or Document(None, policy.source)
    out: list[Problem] = []

    def warn(path: KeyPath, message: str, hint: str | None = None) -> None:
        out.append(Problem(format_path(path), message, doc.location(path), hint))

    loopback = policy.redirect_uris.loopback
    custom = _listed(policy.redirect_uris.allowed, "custom", ("redirect_uris", "allow"))
    managed = [
        _Listed(p, None) for p in policy.redirect_uris.allowed if p.label.startswith("managed:")
    ]
    blocked = _listed(policy.redirect_uris.blocked, "block", ("redirect_uris", "block"))
    cimd = _listed(policy.cimd.allow, "cimd", ("cimd", "allow"))

    for item in [*custom, *blocked, *cimd]:
        assert item.path is not None
        reason = _never_matches(item.pattern, loopback, cimd=item in cimd)
        if reason is not None:
            warn(item.path, f"pattern {item.pattern.source!r} can never match: {reason}")
    for item in custom:
        assert item.path is not None
        blocker = next((b for b in blocked if covers(b.pattern, item.pattern, loopback)), None)
        if blocker is not None and blocker.path is not None:
            warn(
                item.path,
                f"pattern {item.pattern.source!r} can never allow anything: every URI it "
                f"matches is blocked by {format_path(blocker.path)} "
                f"{blocker.pattern.source!r} (the block list is checked first)",
            )
    for items, others in ((custom, managed), (blocked, []), (cimd, [])):
        for item, by in _shadowed(items, others, loopback):
            assert item.path is not None
            if by.path is None:
                entry = by.pattern.label.removeprefix("managed:")
                where = f"managed entry {entry!r} ({by.pattern.source!r})"
            else:
                where = f"{format_path(by.path)} ({by.pattern.source!r})"
            if covers(item.pattern, by.pattern, loopback):
                message = f"pattern {item.pattern.source!r} repeats {where}"
            else:
                message = (
                    f"pattern {item.pattern.source!r} is shadowed: every URI it matches is "
                    f"already matched by {where}"
                )
            warn(item.path, message, "remove it, or make it narrower than the one covering it")
    out += _stale(policy, today, doc)
    return out


def _listed(patterns: Any, label: str, path: KeyPath) -> list[_Listed]:
    """The patterns of one written list, in order, with their key paths."""
    own = [p for p in patterns if p.label == label]
    return [_Listed(p, (*path, i)) for i, p in enumerate(own)]


# --------------------------------------------------------------------------- dead patterns
def _never_matches(pattern: Pattern, loopback: LoopbackMode, *, cimd: bool) -> str | None:
    if pattern.is_loopback and loopback is LoopbackMode.DENY and not cimd:
        return "this policy has loopback: deny, which refuses every loopback redirect URI first"
    samples = list(samples_of(pattern))
    if cimd:
        refusals = [_cimd_refusal(s) for s in samples]
        if all(refusals):
            return (
                f"a client_id URL it would match, such as {samples[0]!r}, {refusals[0]} "
                "(draft-ietf-oauth-client-id-metadata-document §3)"
            )
        return None
    results = [parse_redirect_uri(s) for s in samples]
    if any(isinstance(r, RedirectURI) and pattern.matches(r, loopback) for r in results):
        return None
    first = results[0]
    if isinstance(first, URIRefusal):
        return (
            f"the redirect URI parser refuses the URIs it would match, such as "
            f"{samples[0]!r} ({first.rule})"
        )
    return f"URIs it describes, such as {samples[0]!r}, do not match it after normalization"


def _cimd_refusal(url: str) -> str | None:
    parsed = parse_metadata_url(url)
    if isinstance(parsed, URIRefusal):
        return f"is refused ({parsed.rule.replace('metadata_url.', 'cimd.invalid_url: ')})"
    if parsed.path in ("", "/"):
        return "has no path (cimd.invalid_url)"
    return None


def samples_of(pattern: Pattern) -> Iterator[str]:
    """URIs the pattern describes: each ``*`` replaced by ordinary text, no query for
    ``?*``, a port for ``:*``."""
    for fill in _SAMPLES:
        query = "" if pattern.any_query or pattern.query is None else f"?{pattern.query}"
        path = pattern.path.replace("*", fill)
        if pattern.is_web:
            host = f"{fill}.{pattern.host}" if pattern.host_wildcard else pattern.host
            port = (
                ":8443"
                if pattern.any_port
                else ("" if pattern.port is None else f":{pattern.port}")
            )
            yield f"{pattern.scheme}://{host}{port}{path}{query}"
        else:
            authority = "" if pattern.host is None else "//" + pattern.host.replace("*", fill)
            yield f"{pattern.scheme}:{authority}{path}{query}"


# --------------------------------------------------------------------------- shadowing
def _shadowed(
    items: list[_Listed], others: list[_Listed], loopback: LoopbackMode
) -> Iterator[tuple[_Listed, _Listed]]:
    """Each pattern of ``items`` covered by an ``others`` pattern, an earlier one of
    ``items``, or a later one that is strictly broader (of two equal patterns, the later one
    is reported)."""
    for j, item in enumerate(items):
        by = next((o for o in others if covers(o.pattern, item.pattern, loopback)), None)
        if by is None:
            for i, other in enumerate(items):
                if i == j or not covers(other.pattern, item.pattern, loopback):
                    continue
                if i < j or not covers(item.pattern, other.pattern, loopback):
                    by = other
                    break
        if by is not None:
            yield item, by


def covers(a: Pattern, b: Pattern, loopback: LoopbackMode = LoopbackMode.ANY_PORT) -> bool:
    """Whether every URI ``b`` matches is matched by ``a`` (sound, not complete: ``False``
    when unsure).  Each ``*`` of ``b`` stands for text only a ``*`` of ``a`` can absorb, so
    ``a`` covers ``b`` when ``a``'s globs match ``b``'s with its stars so replaced."""
    if a.scheme != b.scheme or a.is_web != b.is_web:
        return False
    if not _host_covers(a, b):
        return False
    if a.is_web and not a.any_port:
        any_loopback_port = a.is_loopback and loopback is LoopbackMode.ANY_PORT
        if not any_loopback_port and (b.any_port or a.port != b.port):
            return False
    if not _path_covers(a, b):
        return False
    return a.any_query or (not b.any_query and a.query == b.query)


def _host_covers(a: Pattern, b: Pattern) -> bool:
    if a.host_glob is not None:
        if b.host is None:
            return False
        return glob_match(a.host_glob, b.host.replace("*", _ANY))
    if b.host_glob is not None:
        return False
    if a.host_wildcard:
        if b.host_wildcard:
            return a.host == b.host
        if b.host is None or b.host.startswith("["):
            return False
        first, dot, parent = b.host.partition(".")
        return bool(first) and bool(dot) and parent == a.host
    return not b.host_wildcard and a.host == b.host


def _path_covers(a: Pattern, b: Pattern) -> bool:
    if a.path_globs is None:
        return b.path_globs is None and a.path == b.path
    segments = b.path.split("/")
    if len(segments) != len(a.path_globs):
        return False
    return all(
        glob_match(glob, segment.replace("*", _ANY))
        for glob, segment in zip(a.path_globs, segments, strict=True)
    )


# --------------------------------------------------------------------------- managed facts
def _stale(policy: Policy, today: date, doc: Document) -> list[Problem]:
    """Selected managed entries whose ``verified`` date is over a year before ``today``."""
    selected = set(policy.redirect_uris.managed_ids) | set(policy.cimd.managed.values())
    out = []
    for client in policy.managed.clients:
        if client.id not in selected:
            continue
        key: KeyPath = ("redirect_uris", "managed_list")
        if client.id not in policy.redirect_uris.managed_ids:
            key = ("cimd", "managed_list")
        try:
            verified = date.fromisoformat(client.verified[:10])
        except ValueError:
            message = f"managed entry {client.id!r} has no verified date: its facts are unchecked"
        else:
            age = (today - verified).days
            if age <= STALE_AFTER_DAYS:
                continue
            message = (
                f"managed entry {client.id!r} was last verified on {verified.isoformat()}, "
                f"{age} days ago: its redirect URIs may have changed since"
            )
        out.append(
            Problem(
                format_path(key),
                message,
                doc.location(key),
                "update dcr-gateway for a newer managed list, or check the entry's source: "
                f"{client.source}"
                if client.source
                else None,
            )
        )
    return out
