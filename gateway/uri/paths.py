"""Recognising the registration endpoint however its path is spelled.

A guard that compares paths byte for byte is walked around with ``/REG``, ``/reg/``,
``//reg``, ``/%72eg`` or ``/x/../reg``: many authorization servers (node-oidc-provider's
router among them) route all of these to the same handler.  So the gateway compares a
*canonical* form that is at least as forgiving as any upstream router: percent-decoded,
dot segments resolved (RFC 3986 §5.2.4), empty segments and ``;`` parameters removed, one
trailing slash ignored, letter case folded.  Treating one extra path as guarded is
harmless (the policy runs); missing one is a bypass.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import unquote


def canonical_path(raw_path: str) -> str:
    """The canonical form of a request path (without its query) for guard matching."""
    return "/" + "/".join(canonical_segments(raw_path)).casefold()


def canonical_segments(raw_path: str) -> list[str]:
    """The path's segments as a forgiving router would see them, letter case kept (names
    such as Keycloak realms and client ids are case-sensitive): percent-decoded up to three
    times, ``\\`` read as ``/``, dot segments resolved, empty segments and ``;params``
    removed."""
    path = raw_path
    # Decode repeatedly so that double encoding (``%252e``) cannot hide a segment.
    for _ in range(3):
        if "%" not in path:
            break
        decoded = unquote(path, errors="surrogateescape")
        if decoded == path:
            break
        path = decoded
    path = path.replace("\\", "/")
    segments: list[str] = []
    for segment in path.split("/"):
        segment = segment.split(";", 1)[0].strip()
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    return segments


class PathMatcher:
    """A set of guarded paths, matched by canonical form."""

    def __init__(self, paths: Iterable[str]) -> None:
        self.paths = tuple(paths)
        self._canonical = frozenset(canonical_path(p) for p in self.paths)

    def __contains__(self, raw_path: str) -> bool:
        return canonical_path(raw_path) in self._canonical

    def __bool__(self) -> bool:
        return bool(self._canonical)
