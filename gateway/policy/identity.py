"""Who a registration says it is: client names, software ids, and the hosts it names.

An attacker registering ``claudeai`` (or ``Claude Desktop``, ``Cl\\u0430ude``,
``claude\\u034fai``) with its own redirect URI gets a consent screen that tells users they
are authorizing Claude.  So a name or a software_id that claims a managed client's identity
(see :mod:`gateway.policy.names` for what claims) is accepted only with that client's own
redirect URIs; and a request that is a managed client, by claim or by redirect URI, may not
point its other URLs (logo, client and policy pages, keys, logout) at hosts that client does
not own, since the consent screen would show them under the client's name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from gateway import rules
from gateway.oauth.rfc7591 import URL_FIELDS, base_field
from gateway.policy.model import ManagedClient, Policy
from gateway.policy.names import (
    claims,
    hidden_character,
    invalid_name,
    invalid_software_id,
    localized_names,
    name_matches,
    software_id_key,
)
from gateway.policy.work import Refused, Work, show
from gateway.uri.hosts import host_within
from gateway.uri.parse import RedirectURI, parse_redirect_uri


def check_identity(policy: Policy, work: Work) -> None:
    """Names (hidden characters, deny globs, claims) and software_id, after the redirect
    URIs were screened (a claim is judged against the URIs that were accepted)."""
    candidates: tuple[ManagedClient, ...] | None = None
    claimed_by: list[str] = []
    for name in localized_names(work.metadata):
        _check_name(policy, name)
        if not policy.protect_identities:
            continue
        for entries in _name_claims(policy, name):
            candidates = entries if candidates is None else _both(candidates, entries)
            claim = f"client_name {show(name)}"
            if claim not in claimed_by:
                claimed_by.append(claim)
    software_id = work.metadata.get("software_id")
    by_software_id: tuple[ManagedClient, ...] = ()
    if isinstance(software_id, str):
        problem = invalid_software_id(software_id)
        if problem is not None:
            raise Refused(
                rules.SOFTWARE_ID_INVALID.refuse(f"software_id {show(software_id)} {problem}")
            )
        if policy.protect_identities:
            by_software_id = policy.managed.by_software_id.get(software_id_key(software_id), ())
    if candidates is None and not by_software_id:
        return
    if by_software_id:
        candidates = by_software_id if candidates is None else _both(candidates, by_software_id)
        claimed_by.append(f"software_id {show(str(software_id))}")
    claimants = candidates or ()
    entry = next((e for e in claimants if _owns_uris(policy, e, work.accepted)), None)
    if entry is None:
        named = claimants or _claimed_entries(policy, work)
        rule = (
            rules.SOFTWARE_ID_IMPERSONATION
            if not _names_claim(claimed_by)
            else rules.CLIENT_NAME_IMPERSONATION
        )
        who = ", ".join(f"{e.name!r} ({e.vendor})" for e in named) or "several managed clients"
        raise Refused(
            rule.refuse(
                f"{' and '.join(claimed_by)} claims the identity of the managed client {who}, "
                "but the redirect URIs are not that client's"
            ),
            tuple(f"managed:{e.id}" for e in named),
        )
    work.vendor = entry
    # Every URI matched this entry's own patterns: say so, rather than whichever entry
    # sharing a loopback shape happens to come first in the managed list.
    work.matched = [
        f"managed:{entry.id}" if label.startswith("managed:") else label for label in work.matched
    ]


def check_owned_hosts(policy: Policy, work: Work) -> None:
    """A request that is a managed client names only hosts that client uses; and a request
    that is no managed client names no host a managed client owns (a consent page showing
    Claude's logo under another name borrows Claude's identity as surely as the name)."""
    entry = work.vendor
    own = policy.managed.per_client[entry.id] if entry is not None else None
    for key, value in _url_values(work.metadata):
        if key == "post_logout_redirect_uris" and own is not None:
            parsed = parse_redirect_uri(value)
            if isinstance(parsed, RedirectURI) and own.match(parsed) is not None:
                continue
        _check_host(policy, entry, key, value)


def _url_values(metadata: Mapping[str, object]) -> Iterable[tuple[str, str]]:
    """Every (field, URL) of the URL-valued fields, lists included."""
    for key, value in metadata.items():
        field = base_field(key)
        if field in URL_FIELDS and isinstance(value, str):
            yield key, value
        elif field in ("request_uris", "post_logout_redirect_uris") and isinstance(value, list):
            yield from ((key, item) for item in value if isinstance(item, str))


def _check_host(policy: Policy, entry: ManagedClient | None, key: str, value: str) -> None:
    parsed = parse_redirect_uri(value)
    if not isinstance(parsed, RedirectURI) or parsed.host is None or not parsed.is_web:
        return  # the URL rules refuse it with their own rule id, or it has no host
    host = parsed.host
    if entry is not None:
        if host_within(host, entry.hosts) or host_within(host, entry.shared_hosts):
            return
        owned = ", ".join((*entry.hosts, *entry.shared_hosts)) or "none listed"
        raise Refused(
            rules.IDENTITY_FOREIGN_HOST.refuse(
                f"{key} {show(value)} is on a host the managed client {entry.name!r} "
                f"({entry.vendor}) does not own (its hosts: {owned})"
            ),
            (f"managed:{entry.id}",),
        )
    owner = next(
        (
            c
            for c in policy.managed.clients
            if host_within(host, c.hosts) and not parsed.is_loopback
        ),
        None,
    )
    if owner is not None:
        raise Refused(
            rules.IDENTITY_FOREIGN_HOST.refuse(
                f"{key} {show(value)} is on a host of the managed client {owner.name!r} "
                f"({owner.vendor}), but the request is not that client"
            ),
            (f"managed:{owner.id}",),
        )


def _check_name(policy: Policy, name: str) -> None:
    hidden = hidden_character(name)
    if hidden is not None:
        raise Refused(
            rules.CLIENT_NAME_HIDDEN_CHARACTERS.refuse(
                f"client_name {show(name)} contains {hidden}, so what a consent screen shows "
                "would differ from what was sent"
            )
        )
    problem = invalid_name(name)
    if problem is not None:
        raise Refused(rules.CLIENT_NAME_INVALID.refuse(f"client_name {show(name)} {problem}"))
    for glob in policy.client.client_name_deny:
        if name_matches(glob.regexes, name):
            raise Refused(
                rules.CLIENT_NAME_DENIED.refuse(
                    f"client_name {show(name)} matches deny pattern {glob.source!r}"
                ),
                (f"client_name:{glob.source}",),
            )


def _name_claims(policy: Policy, name: str) -> Iterable[tuple[ManagedClient, ...]]:
    protected = policy.managed.protected
    unprotected = policy.client.unprotected_identities
    for claim in claims(name, protected, policy.managed.claim_prefixes):
        if claim.key not in unprotected:
            yield protected[claim.key]


def _owns_uris(policy: Policy, entry: ManagedClient, accepted: list[RedirectURI]) -> bool:
    own = policy.managed.per_client[entry.id]
    return bool(accepted) and all(own.match(uri) is not None for uri in accepted)


def _both(a: tuple[ManagedClient, ...], b: tuple[ManagedClient, ...]) -> tuple[ManagedClient, ...]:
    return tuple(entry for entry in a if entry in b)


def _names_claim(claimed_by: list[str]) -> bool:
    return any(what.startswith("client_name") for what in claimed_by)


def _claimed_entries(policy: Policy, work: Work) -> tuple[ManagedClient, ...]:
    """Every entry any claim named (for ``matched`` when the claims contradict each other)."""
    found: dict[str, ManagedClient] = {}
    for name in localized_names(work.metadata):
        for entries in _name_claims(policy, name):
            for entry in entries:
                found.setdefault(entry.id, entry)
    return tuple(found.values())
