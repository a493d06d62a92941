"""Checking URL-valued client metadata that is not a redirect URI.

``jwks_uri``, ``sector_identifier_uri`` and ``request_uris`` are fetched by the
authorization server, ``logo_uri`` by every browser showing the consent page, and
``client_uri``/``policy_uri``/``tos_uri`` are links shown to users.  Each must be an
``https`` URL with a host and no credentials: plain http would let a network attacker
swap keys or pages, and a missing host or odd characters are where parsers disagree.
"""

from __future__ import annotations

import re

_CONTROL_OR_SPACE = re.compile(
    r"[\x00-\x20\x7f-\x9f\s\\\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff]"
)
_HTTPS = re.compile(r"^https://([^/?#]*)", re.IGNORECASE)


def check_https_url(value: str) -> str | None:
    """``None`` when acceptable, else a phrase saying what is wrong."""
    if len(value) > 2000:
        return "is longer than 2000 characters"
    if _CONTROL_OR_SPACE.search(value):
        return "contains whitespace, control characters or a backslash"
    match = _HTTPS.match(value)
    if match is None:
        return "must be an https:// URL"
    authority = match.group(1)
    if "@" in authority or "%40" in authority.lower():
        return "must not carry user information"
    if "%" in authority:
        return "must not percent-encode its host"
    host, port = authority, ""
    if not authority.endswith("]") and ":" in authority:
        host, _, port = authority.rpartition(":")
    if not host or host.startswith(":"):
        return "must name a host"
    if port and not (port.isascii() and port.isdigit()):
        return "has a port that is not a number"
    return None
