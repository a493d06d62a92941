"""The policy engine: ``decide(policy, metadata, context) -> Decision``, pure.

No I/O and no exceptions escape for well-typed metadata (:func:`gateway.policy.judge.judge`
checks the RFC 7591 types first and is total for any JSON value): every refusal is a
:class:`Decision` carrying the wire error and its stable rule id.  Checks run in a fixed
order, and the first refusal wins:

1. ``mode.disabled``
2. ``software_statement.*`` (its claims would override what was judged, RFC 7591 §2.3)
3. grant and response types, defaults injected, consistency (RFC 7591 §2.1)
4. redirect URIs (:mod:`gateway.policy.redirects`): count, hygiene, ``loopback: deny``,
   block list, then the allow lists (allowlist mode), ``on_mismatch: drop`` removing
   refused URIs; then ``post_logout_redirect_uris`` the same way
5. identity (:mod:`gateway.policy.identity`): hidden characters, deny globs, claims of a
   managed client's identity by name or software_id
6. ``token_endpoint_auth_method``, default injected (RFC 7591 §2)
7. ``scope``, default injected, excess rejected or trimmed
8. URL-valued metadata (:mod:`gateway.policy.metadata_urls`): https, public DNS hosts
9. a request that is a managed client names only hosts that client owns

Fields the policy does not know are forwarded unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway import rules
from gateway.policy.decision import Decision, RequestContext
from gateway.policy.identity import check_identity, check_owned_hosts
from gateway.policy.metadata_urls import check_metadata_urls
from gateway.policy.model import ManagedClient, Mode, OnExcess, Policy
from gateway.policy.redirects import check_post_logout_redirect_uris, check_redirect_uris
from gateway.policy.work import Refused, Work, listing, show
from gateway.uri.parse import RedirectURI


def decide(
    policy: Policy, metadata: Mapping[str, Any], context: RequestContext | None = None
) -> Decision:
    """Judge one registration request with well-typed metadata.  ``context`` carries
    request facts (client IP, user agent) that rules outside the metadata key on."""
    work = Work(dict(metadata))
    try:
        if policy.mode is Mode.DISABLED:
            raise Refused(
                rules.MODE_DISABLED.refuse("dynamic client registration is disabled by policy")
            )
        _software_statement(work)
        grants = _grant_and_response_types(policy, work)
        check_redirect_uris(policy, work, grants)
        check_post_logout_redirect_uris(policy, work)
        check_identity(policy, work)
        _auth_method(policy, work)
        _scope(policy, work)
        check_metadata_urls(policy, work)
        if work.vendor is None:
            work.vendor = _vendor_by_uri(policy, work.accepted)
        if policy.protect_identities:
            check_owned_hosts(policy, work)
    except Refused as refused:
        return Decision.deny(refused.error, work.metadata, matched=refused.matched)
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


def _allow_rule(policy: Policy, work: Work) -> str:
    if policy.mode is Mode.OPEN or work.kinds == {"open"}:  # ("open": allow lists off)
        return rules.ALLOW_OPEN.id
    if not work.accepted:
        return rules.ALLOW_NO_REDIRECT_URIS.id
    if work.kinds == {"managed"}:
        return rules.ALLOW_MANAGED.id
    if work.kinds == {"custom"}:
        return rules.ALLOW_CUSTOM.id
    return rules.ALLOW_MIXED.id


def _allow_description(policy: Policy, work: Work) -> str:
    if policy.mode is Mode.OPEN:
        return "allowed: the policy allows any application (mode: open)"
    if not work.accepted:
        return "allowed: no redirect URIs to approve, and every client rule passed"
    return (
        "allowed: every redirect URI matched an approved pattern ("
        + ", ".join(dict.fromkeys(work.matched))
        + ")"
    )


def _software_statement(work: Work) -> None:
    if "software_statement" in work.metadata:
        raise Refused(
            rules.SOFTWARE_STATEMENT_NOT_ACCEPTED.refuse(
                "software statements are not accepted here: their claims would override "
                "the metadata this policy judged (RFC 7591 §2.3)"
            )
        )


def _grant_and_response_types(policy: Policy, work: Work) -> frozenset[str]:
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
        raise Refused(rules.GRANT_TYPE_NOT_ALLOWED.refuse("grant_types must not be empty"))
    for grant in grants:
        if allowed_grants is not None and grant not in allowed_grants:
            raise Refused(
                rules.GRANT_TYPE_NOT_ALLOWED.refuse(
                    f"grant type {show(grant)} is not allowed; allowed: {listing(allowed_grants)}"
                )
            )
    for response in responses:
        if allowed_responses is not None and response not in allowed_responses:
            raise Refused(
                rules.RESPONSE_TYPE_NOT_ALLOWED.refuse(
                    f"response type {show(response)} is not allowed; allowed: "
                    f"{listing(allowed_responses)}"
                )
            )
    problem = _inconsistency(set(grants), responses)
    if problem:
        raise Refused(rules.GRANT_TYPE_INCONSISTENT.refuse(f"{problem} (RFC 7591 §2.1)"))
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


def _auth_method(policy: Policy, work: Work) -> None:
    md = work.metadata
    allowed = policy.client.token_endpoint_auth_methods
    if "token_endpoint_auth_method" not in md:
        md["token_endpoint_auth_method"] = policy.client.default_token_endpoint_auth_method
        work.notes.append(f"injected token_endpoint_auth_method={md['token_endpoint_auth_method']}")
    method = md["token_endpoint_auth_method"]
    if allowed is not None and method not in allowed:
        raise Refused(
            rules.AUTH_METHOD_NOT_ALLOWED.refuse(
                f"token_endpoint_auth_method {show(method)} is not allowed; allowed: "
                f"{listing(allowed)}"
            )
        )


def _scope(policy: Policy, work: Work) -> None:
    md = work.metadata
    scopes = policy.client.scopes
    requested = md.get("scope", "").split()
    if not requested:
        if scopes.default:
            md["scope"] = " ".join(scopes.default)
            work.notes.append(f"injected scope={md['scope']!r}")
        return
    if scopes.allowed is None:
        return
    excess = [s for s in dict.fromkeys(requested) if s not in scopes.allowed]
    if not excess:
        return
    if scopes.on_excess is OnExcess.TRIM:
        kept = [s for s in dict.fromkeys(requested) if s in scopes.allowed]
        if kept:
            md["scope"] = " ".join(kept)
            work.notes.append(f"trimmed scope {excess}")
            return
    raise Refused(
        rules.SCOPE_NOT_ALLOWED.refuse(
            f"scope {show(' '.join(excess))} is not allowed; allowed: {listing(scopes.allowed)}"
        )
    )
