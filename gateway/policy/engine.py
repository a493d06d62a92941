"""The policy engine: ``decide(policy, metadata, context) -> Decision``, pure and total.

No I/O and no exceptions escape: every refusal is a :class:`Decision` carrying the wire
error and its stable rule id.  Checks run in a fixed order, and the first refusal wins:

1. ``mode.disabled``
2. ``software_statement.*`` (its claims would override what was judged, RFC 7591 §2.3)
3. grant and response types, defaults injected, consistency (RFC 7591 §2.1)
4. redirect URIs: hygiene, ``loopback: deny``, block list, then the allow lists
   (allowlist mode), with ``on_mismatch: drop`` removing refused URIs; then
   ``post_logout_redirect_uris`` the same way
5. client name deny globs and impersonation of managed entries (by name or software_id)
6. ``token_endpoint_auth_method``, default injected (RFC 7591 §2)
7. ``scope``, default injected, excess rejected or trimmed
8. URL-valued metadata must be https (``jwks`` with ``jwks_uri`` is refused, RFC 7591 §2)

Fields the policy does not know are forwarded unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway import rules
from gateway.errors import (
    InvalidClientMetadata,
    InvalidRedirectURI,
    OAuthError,
)
from gateway.policy.decision import Decision, RequestContext
from gateway.policy.model import ManagedClient, Mode, OnExcess, OnMismatch, Policy
from gateway.policy.names import has_hidden_characters, normalize_name
from gateway.policy.patterns import LoopbackMode
from gateway.policy.urls import check_https_url
from gateway.uri.parse import RedirectURI, URIRefusal, parse_redirect_uri

#: Grant types whose flows send the user agent to a redirect URI (RFC 7591 §2).
REDIRECT_GRANTS = frozenset({"authorization_code", "implicit"})
#: Metadata the authorization server fetches or links to: https only.
URL_FIELDS = (
    "jwks_uri",
    "logo_uri",
    "client_uri",
    "policy_uri",
    "tos_uri",
    "sector_identifier_uri",
    "initiate_login_uri",
    "backchannel_logout_uri",
    "frontchannel_logout_uri",
)
LOCALIZED_URL_FIELDS = frozenset({"logo_uri", "client_uri", "policy_uri", "tos_uri"})


class _Refused(Exception):
    def __init__(self, error: OAuthError, matched: tuple[str, ...] = ()) -> None:
        self.error = error
        self.matched = matched


@dataclass(slots=True)
class _Work:
    """What the checks have found so far."""

    metadata: dict[str, Any]
    matched: list[str] = field(default_factory=list)
    kinds: set[str] = field(default_factory=set)
    dropped: list[str] = field(default_factory=list)
    accepted: list[RedirectURI] = field(default_factory=list)
    vendor: ManagedClient | None = None
    notes: list[str] = field(default_factory=list)


def decide(
    policy: Policy, metadata: Mapping[str, Any], context: RequestContext | None = None
) -> Decision:
    """Judge one registration request.  ``context`` is reserved for request facts
    (client IP, user agent) that later rules key on; today's rules read metadata only."""
    work = _Work(dict(metadata))
    try:
        if policy.mode is Mode.DISABLED:
            raise _Refused(
                rules.MODE_DISABLED.refuse("dynamic client registration is disabled by policy")
            )
        _software_statement(work)
        grants = _grant_and_response_types(policy, work)
        _redirect_uris(policy, work, required=bool(grants & REDIRECT_GRANTS))
        _post_logout_redirect_uris(policy, work)
        _identity(policy, work)
        _auth_method(policy, work)
        _scope(policy, work)
        _urls(work)
    except _Refused as refused:
        return Decision.deny(refused.error, work.metadata, matched=refused.matched)
    if work.vendor is None:
        work.vendor = _vendor_by_uri(policy, work.accepted)
    return Decision(
        allowed=True,
        rule=_allow_rule(policy, work),
        description=_allow_description(policy, work),
        metadata=work.metadata,
        matched=tuple(dict.fromkeys(work.matched)),
        vendor=work.vendor.id if work.vendor else None,
        dropped_redirect_uris=tuple(work.dropped),
        notes=tuple(work.notes),
    )


def _allow_rule(policy: Policy, work: _Work) -> str:
    if policy.mode is Mode.OPEN:
        return "allow.open"
    if not work.accepted:
        return "allow.no_redirect_uris"
    if work.kinds == {"managed"}:
        return "allow.managed"
    if work.kinds == {"custom"}:
        return "allow.custom"
    return "allow.mixed"


def _allow_description(policy: Policy, work: _Work) -> str:
    if policy.mode is Mode.OPEN:
        return "allowed: the policy allows any application (mode: open)"
    if not work.accepted:
        return "allowed: no redirect URIs to approve, and every client rule passed"
    return (
        "allowed: every redirect URI matched an approved pattern ("
        + ", ".join(dict.fromkeys(work.matched))
        + ")"
    )


def _software_statement(work: _Work) -> None:
    if "software_statement" in work.metadata:
        raise _Refused(
            rules.SOFTWARE_STATEMENT_NOT_ACCEPTED.refuse(
                "software statements are not accepted here: their claims would override "
                "the metadata this policy judged (RFC 7591 §2.3)"
            )
        )


def _grant_and_response_types(policy: Policy, work: _Work) -> frozenset[str]:
    md = work.metadata
    allowed_grants = policy.client.grant_types
    allowed_responses = policy.client.response_types
    if "grant_types" not in md:
        implied = _implied_grants(md.get("response_types", ["code"]))
        md["grant_types"] = implied
        work.notes.append(f"injected grant_types={implied}")
    if "response_types" not in md:
        implied = _implied_responses(md["grant_types"])
        md["response_types"] = implied
        work.notes.append(f"injected response_types={implied}")
    grants: list[str] = md["grant_types"]
    responses: list[str] = md["response_types"]
    if not grants:
        raise _Refused(rules.GRANT_TYPE_NOT_ALLOWED.refuse("grant_types must not be empty"))
    for grant in grants:
        if grant not in allowed_grants:
            raise _Refused(
                rules.GRANT_TYPE_NOT_ALLOWED.refuse(
                    f"grant type {_show(grant)} is not allowed; allowed: {_listing(allowed_grants)}"
                )
            )
    for response in responses:
        if response not in allowed_responses:
            raise _Refused(
                rules.RESPONSE_TYPE_NOT_ALLOWED.refuse(
                    f"response type {_show(response)} is not allowed; allowed: "
                    f"{_listing(allowed_responses)}"
                )
            )
    problem = _inconsistency(set(grants), responses)
    if problem:
        raise _Refused(rules.GRANT_TYPE_INCONSISTENT.refuse(f"{problem} (RFC 7591 §2.1)"))
    return frozenset(grants)


def _implied_grants(responses: Any) -> list[str]:
    parts = {p for r in responses if isinstance(r, str) for p in r.split()}
    grants = []
    if "code" in parts:
        grants.append("authorization_code")
    if parts & {"token", "id_token"}:
        grants.append("implicit")
    return grants or ["authorization_code"]


def _implied_responses(grants: list[str]) -> list[str]:
    out = []
    if "authorization_code" in grants:
        out.append("code")
    if "implicit" in grants:
        out.append("token")
    return out


def _inconsistency(grants: set[str], responses: list[str]) -> str | None:
    parts = {p for r in responses for p in r.split()}
    if "code" in parts and "authorization_code" not in grants:
        return "response type 'code' needs the authorization_code grant"
    if parts & {"token", "id_token"} and "implicit" not in grants:
        return "response types with 'token' or 'id_token' need the implicit grant"
    if "authorization_code" in grants and "code" not in parts:
        return "the authorization_code grant needs the 'code' response type"
    if "implicit" in grants and not parts & {"token", "id_token"}:
        return "the implicit grant needs a 'token' or 'id_token' response type"
    return None


def _check_uri(
    policy: Policy, raw: str, prefix: str
) -> tuple[RedirectURI | None, OAuthError | None, str | None]:
    """One URI through hygiene, loopback, block and allow lists.

    Returns the parsed URI and its match label, or the refusal.  ``prefix`` names the
    field in rule ids (``redirect_uri`` or ``post_logout_redirect_uri``).
    """
    parsed = parse_redirect_uri(raw)
    shown = _show(raw)
    if isinstance(parsed, URIRefusal):
        rule = prefix + parsed.rule.removeprefix("redirect_uri")
        return None, InvalidRedirectURI(f"{prefix} {shown}: {parsed.description}", rule=rule), None
    rp = policy.redirect_uris
    if rp.loopback is LoopbackMode.DENY and parsed.is_loopback:
        return (
            None,
            InvalidRedirectURI(
                f"{prefix} {shown} is a loopback address, and this policy denies loopback "
                "redirect URIs (loopback: deny)",
                rule=f"{prefix}.loopback_denied",
            ),
            None,
        )
    blocked = rp.blocked.match(parsed)
    if blocked is not None:
        return (
            None,
            InvalidRedirectURI(
                f"{prefix} {shown} matches block pattern {blocked.pattern!r}",
                rule=f"{prefix}.blocked",
            ),
            f"block:{blocked.pattern}",
        )
    if policy.mode is Mode.OPEN:
        return parsed, None, "open"
    allowed = rp.allowed.match(parsed)
    if allowed is None:
        return (
            None,
            InvalidRedirectURI(
                f"{prefix} {shown} is not allowed: it matches no approved client of the managed "
                "list and no pattern of the custom list",
                rule=f"{prefix}.not_allowed",
            ),
            None,
        )
    if allowed.label.startswith("managed:"):
        return parsed, None, allowed.label
    return parsed, None, f"custom:{allowed.pattern}"


def _screen(
    policy: Policy, uris: list[str], prefix: str
) -> tuple[list[tuple[str, RedirectURI, str]], list[str], _Refused | None]:
    """Every URI of one field through :func:`_check_uri`.

    With ``on_mismatch: reject`` the first refusal is raised; with ``drop`` refused URIs
    are collected, and the first refusal is returned for the caller to raise if nothing
    is left.
    """
    kept: list[tuple[str, RedirectURI, str]] = []
    dropped: list[str] = []
    first: _Refused | None = None
    for raw in uris:
        parsed, error, label = _check_uri(policy, raw, prefix)
        if error is None and parsed is not None and label is not None:
            kept.append((raw, parsed, label))
            continue
        assert error is not None
        refusal = _Refused(error, (label,) if label else ())
        if policy.redirect_uris.on_mismatch is OnMismatch.REJECT:
            raise refusal
        dropped.append(raw)
        first = first or refusal
    return kept, dropped, first


def _redirect_uris(policy: Policy, work: _Work, *, required: bool) -> None:
    md = work.metadata
    uris: list[str] = md.get("redirect_uris") or []
    if not uris:
        if required:
            raise _Refused(
                InvalidRedirectURI(
                    "redirect_uris is required for the authorization_code and implicit "
                    "grants (RFC 7591 §2)",
                    rule="redirect_uri.missing",
                )
            )
        return
    kept, dropped, first = _screen(policy, uris, "redirect_uri")
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


def _post_logout_redirect_uris(policy: Policy, work: _Work) -> None:
    """OpenID Connect RP-Initiated Logout redirects the browser too: same rules."""
    uris = work.metadata.get("post_logout_redirect_uris")
    if not uris:
        return
    kept, dropped, _ = _screen(policy, uris, "post_logout_redirect_uri")
    if dropped:
        work.metadata["post_logout_redirect_uris"] = [raw for raw, _, _ in kept]
        work.dropped.extend(dropped)
        work.notes.append(f"dropped post_logout_redirect_uris={dropped}")


def _names(metadata: Mapping[str, Any]) -> Iterable[str]:
    for key, value in metadata.items():
        if (key == "client_name" or key.startswith("client_name#")) and isinstance(value, str):
            yield value


def _identity(policy: Policy, work: _Work) -> None:
    """Deny globs, and impersonation: a managed client's name or software_id is accepted
    only together with that client's own redirect URIs."""
    managed = policy.managed
    for name in _names(work.metadata):
        if has_hidden_characters(name):
            raise _Refused(
                InvalidClientMetadata(
                    "client_name contains control or bidirectional formatting characters, "
                    "so what a consent screen shows would differ from what was sent",
                    rule="client_name.invalid",
                )
            )
        normalized = normalize_name(name)
        for glob in policy.client.client_name_deny:
            if glob.regex.fullmatch(normalized):
                raise _Refused(
                    InvalidClientMetadata(
                        f"client_name {_show(name)} matches deny pattern {glob.source!r}",
                        rule="client_name.denied",
                    ),
                    (f"client_name:{glob.source}",),
                )
        entry = managed.by_name.get(normalized)
        if entry is not None:
            _require_own_uris(policy, work, entry, f"client_name {_show(name)}", "client_name")
    software_id = work.metadata.get("software_id")
    if isinstance(software_id, str) and software_id.strip().lower() in managed.by_software_id:
        entry = managed.by_software_id[software_id.strip().lower()]
        _require_own_uris(policy, work, entry, f"software_id {_show(software_id)}", "software_id")


def _require_own_uris(
    policy: Policy, work: _Work, entry: ManagedClient, claim: str, field_name: str
) -> None:
    own = policy.managed.per_client[entry.id]
    if not work.accepted or any(own.match(uri) is None for uri in work.accepted):
        raise _Refused(
            InvalidClientMetadata(
                f"{claim} is the name of the managed client {entry.name!r} ({entry.vendor}), "
                "but the redirect URIs are not that client's",
                rule=f"{field_name}.impersonation",
            ),
            (f"managed:{entry.id}",),
        )
    work.vendor = work.vendor or entry
    # Every URI matched this entry's own patterns: say so, rather than whichever entry
    # sharing a loopback shape happens to come first in the managed list.
    work.matched = [
        f"managed:{entry.id}" if label.startswith("managed:") else label for label in work.matched
    ]


def _vendor_by_uri(policy: Policy, accepted: list[RedirectURI]) -> ManagedClient | None:
    """The managed client a redirect URI belongs to.  Loopback URIs do not count: many
    command-line clients share ``http://localhost:<port>/callback``, so matching one says
    the URI is acceptable, not who the client is."""
    for uri in accepted:
        if uri.is_loopback:
            continue
        match = policy.managed.patterns.match(uri)
        if match is not None:
            entry_id = match.label.removeprefix("managed:")
            return next(c for c in policy.managed.clients if c.id == entry_id)
    return None


def _auth_method(policy: Policy, work: _Work) -> None:
    md = work.metadata
    allowed = policy.client.token_endpoint_auth_methods
    if "token_endpoint_auth_method" not in md:
        md["token_endpoint_auth_method"] = policy.client.default_token_endpoint_auth_method
        work.notes.append(f"injected token_endpoint_auth_method={md['token_endpoint_auth_method']}")
    method = md["token_endpoint_auth_method"]
    if method not in allowed:
        raise _Refused(
            InvalidClientMetadata(
                f"token_endpoint_auth_method {_show(method)} is not allowed; allowed: "
                f"{_listing(allowed)}",
                rule="auth_method.not_allowed",
            )
        )


def _scope(policy: Policy, work: _Work) -> None:
    md = work.metadata
    rules = policy.client.scopes
    requested = md.get("scope", "").split()
    if not requested:
        if rules.default:
            md["scope"] = " ".join(rules.default)
            work.notes.append(f"injected scope={md['scope']!r}")
        return
    if rules.allowed is None:
        return
    excess = [s for s in dict.fromkeys(requested) if s not in rules.allowed]
    if not excess:
        return
    if rules.on_excess is OnExcess.TRIM:
        kept = [s for s in dict.fromkeys(requested) if s in rules.allowed]
        if kept:
            md["scope"] = " ".join(kept)
            work.notes.append(f"trimmed scope {excess}")
            return
    raise _Refused(
        InvalidClientMetadata(
            f"scope {_show(' '.join(excess))} is not allowed; allowed: {_listing(rules.allowed)}",
            rule="scope.not_allowed",
        )
    )


def _urls(work: _Work) -> None:
    md = work.metadata
    if "jwks" in md and "jwks_uri" in md:
        raise _Refused(
            InvalidClientMetadata(
                "jwks and jwks_uri must not both be present (RFC 7591 §2)", rule="jwks.conflict"
            )
        )
    for key, value in md.items():
        base = key.split("#", 1)[0]
        if base not in URL_FIELDS or ("#" in key and base not in LOCALIZED_URL_FIELDS):
            continue
        problem = check_https_url(value) if isinstance(value, str) else "must be a string (a URL)"
        if problem:
            raise _Refused(
                InvalidClientMetadata(
                    f"{key} {_show(str(value))} {problem}", rule="metadata_url.invalid"
                )
            )
    for value in md.get("request_uris") or ():
        problem = check_https_url(value)
        if problem:
            raise _Refused(
                InvalidClientMetadata(
                    f"request_uris entry {_show(value)} {problem}", rule="metadata_url.invalid"
                )
            )


def _listing(values: Iterable[str]) -> str:
    return ", ".join(sorted(values)) or "(none)"


def _show(value: str, limit: int = 200) -> str:
    """A value quoted for an error description, cut to a readable length."""
    text = value if len(value) <= limit else value[:limit] + "..."
    return repr(text)
