"""URL-valued client metadata other than redirect URIs (RFC 7591 §2, OIDC Registration §2).

``jwks_uri``, ``sector_identifier_uri``, ``backchannel_logout_uri`` and every entry of
``request_uris`` are fetched by the authorization server itself; ``logo_uri`` by every
browser showing the consent page; ``client_uri``, ``policy_uri``, ``tos_uri``,
``initiate_login_uri`` and ``frontchannel_logout_uri`` are followed by browsers.  Each goes
through the one strict URI parser with the fetch rules
(:func:`gateway.uri.parse.parse_metadata_url`): https, a public DNS name, no IP address in
any notation, no userinfo or fragment.  Language-tagged variants (``logo_uri#ja``) count
too.  A policy may also list the only hosts fetched URLs may use
(``client.fetched_url_hosts``), for teams that want keys only from known hosts.
"""

from __future__ import annotations

from gateway import rules
from gateway.oauth.rfc7591 import FETCHED_URL_FIELDS, LOCALIZABLE_FIELDS, URL_FIELDS, base_field
from gateway.policy.model import Policy
from gateway.policy.work import Refused, Work, show
from gateway.uri.hosts import host_within
from gateway.uri.parse import URIRefusal, parse_metadata_url


def check_metadata_urls(policy: Policy, work: Work) -> None:
    md = work.metadata
    if "jwks" in md and "jwks_uri" in md:
        raise Refused(
            rules.JWKS_CONFLICT.refuse("jwks and jwks_uri must not both be present (RFC 7591 §2)")
        )
    for key, value in md.items():
        field = base_field(key)
        if field not in URL_FIELDS or ("#" in key and field not in LOCALIZABLE_FIELDS):
            continue
        _check(policy, key, value, fetched=field in FETCHED_URL_FIELDS)
    for value in md.get("request_uris") or ():
        _check(policy, "request_uris entry", value, fetched=True)


def _check(policy: Policy, what: str, value: str, *, fetched: bool) -> None:
    parsed = parse_metadata_url(value)
    if isinstance(parsed, URIRefusal):
        raise Refused(rules.get(parsed.rule).refuse(f"{what} {parsed.description}"))
    hosts = policy.client.fetched_url_hosts
    if fetched and hosts is not None and not host_within(parsed.host or "", hosts):
        raise Refused(
            rules.get("metadata_url.host_not_allowed").refuse(
                f"{what} {show(value)} is on a host outside client.fetched_url_hosts "
                f"({', '.join(hosts) or 'none'})"
            )
        )
