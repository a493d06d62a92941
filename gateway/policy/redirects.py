"""Redirect URI checks: hygiene, loopback, block list, allow lists (RFC 7591 §2, §3.2.1).

``redirect_uris`` decide where authorization codes are delivered (RFC 6749 §10.6), and
``post_logout_redirect_uris`` (OpenID Connect RP-Initiated Logout) also send the browser
somewhere: both go through the same rules, with rule ids prefixed by the field.

Cost is bounded before anything is parsed: more than ``max_redirect_uris`` URIs (default
20; real clients send at most 6) is refused outright, and under ``on_mismatch: reject`` the
first refused URI ends the check, so no request can make the event loop parse hundreds of
internationalized URIs.
"""

from __future__ import annotations

from gateway import rules
from gateway.errors import OAuthError
from gateway.policy.model import Mode, OnMismatch, Policy
from gateway.policy.patterns import LoopbackMode
from gateway.policy.work import Refused, Work, show
from gateway.uri.parse import RedirectURI, URIRefusal, parse_redirect_uri

#: Grant types whose flows send the user agent to a redirect URI (RFC 7591 §2).
REDIRECT_GRANTS = frozenset({"authorization_code", "implicit"})

Screened = tuple[str, RedirectURI, str]


def _refusal(prefix: str, suffix: str, description: str) -> OAuthError:
    return rules.get(f"{prefix}.{suffix}").refuse(description)


def check_uri(policy: Policy, raw: str, prefix: str) -> tuple[RedirectURI, str] | Refused:
    """One URI through hygiene, loopback, block and allow lists: the parsed URI and its
    match label (``managed:<id>``, ``custom:<pattern>`` or ``open``), or the refusal.
    ``prefix`` names the field in rule ids (``redirect_uri`` or
    ``post_logout_redirect_uri``)."""
    parsed = parse_redirect_uri(raw)
    shown = show(raw)
    if isinstance(parsed, URIRefusal):
        suffix = parsed.rule.removeprefix("redirect_uri.")
        return Refused(_refusal(prefix, suffix, f"{prefix} {shown}: {parsed.description}"))
    rp = policy.redirect_uris
    if rp.loopback is LoopbackMode.DENY and parsed.is_loopback:
        return Refused(
            _refusal(
                prefix,
                "loopback_denied",
                f"{prefix} {shown} is a loopback address, and this policy denies loopback "
                "redirect URIs (loopback: deny)",
            )
        )
    blocked = rp.blocked.match(parsed)
    if blocked is not None:
        return Refused(
            _refusal(
                prefix, "blocked", f"{prefix} {shown} matches block pattern {blocked.pattern!r}"
            ),
            (f"block:{blocked.pattern}",),
        )
    if policy.mode is Mode.OPEN:
        return parsed, "open"
    allowed = rp.allowed.match(parsed)
    if allowed is None and rp.any_allowed:
        return parsed, "open"
    if allowed is None:
        return Refused(
            _refusal(
                prefix,
                "not_allowed",
                f"{prefix} {shown} is not allowed: it matches no approved client of the managed "
                "list and no pattern of the custom list",
            )
        )
    if allowed.label.startswith("managed:"):
        return parsed, allowed.label
    return parsed, f"custom:{allowed.pattern}"


def screen(
    policy: Policy, uris: list[str], prefix: str
) -> tuple[list[Screened], list[str], Refused | None]:
    """Every URI of one field through :func:`check_uri`, after the count cap.

    With ``on_mismatch: reject`` the first refusal is raised; with ``drop`` refused URIs
    are collected, and the first refusal is returned for the caller to raise if nothing
    is left.
    """
    limit = policy.redirect_uris.max_redirect_uris
    if len(uris) > limit:
        raise Refused(
            _refusal(
                prefix,
                "too_many",
                f"{prefix.replace('_uri', '_uris')} has {len(uris)} entries; this policy "
                f"accepts at most {limit} (max_redirect_uris)",
            )
        )
    kept: list[Screened] = []
    dropped: list[str] = []
    first: Refused | None = None
    reject = policy.redirect_uris.on_mismatch is OnMismatch.REJECT
    for raw in uris:
        outcome = check_uri(policy, raw, prefix)
        if not isinstance(outcome, Refused):
            kept.append((raw, *outcome))
            continue
        if reject:
            raise outcome
        dropped.append(raw)
        first = first or outcome
    return kept, dropped, first


def check_redirect_uris(policy: Policy, work: Work, grants: frozenset[str]) -> None:
    md = work.metadata
    uris: list[str] = md.get("redirect_uris") or []
    if not uris:
        if grants & REDIRECT_GRANTS:
            raise Refused(
                rules.REDIRECT_URI_MISSING.refuse(
                    "redirect_uris is required for the authorization_code and implicit "
                    "grants (RFC 7591 §2)"
                )
            )
        return
    kept, dropped, first = screen(policy, uris, "redirect_uri")
    if not kept and first is not None:
        raise first
    for _, parsed, label in kept:
        work.accepted.append(parsed)
        work.matched.append(label)
        work.kinds.add(label.split(":", 1)[0])
    if dropped:
        md["redirect_uris"] = [raw for raw, _, _ in kept]
        work.dropped.extend(dropped)
        work.notes.append(f"dropped redirect_uris={dropped}")


def check_post_logout_redirect_uris(policy: Policy, work: Work) -> None:
    """OpenID Connect RP-Initiated Logout redirects the browser too: same rules."""
    uris = work.metadata.get("post_logout_redirect_uris")
    if not uris:
        return
    kept, dropped, _ = screen(policy, uris, "post_logout_redirect_uri")
    if dropped:
        work.metadata["post_logout_redirect_uris"] = [raw for raw, _, _ in kept]
        work.dropped.extend(dropped)
        work.notes.append(f"dropped post_logout_redirect_uris={dropped}")
