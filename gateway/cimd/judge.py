"""The decision on a Client ID Metadata Document: the same engine, rules and rule ids as a
registration, plus what the draft requires of the document itself.  Pure: no I/O.

draft-ietf-oauth-client-id-metadata-document (and the MCP authorization specification):

* the document's ``client_id`` equals the URL it was fetched from, exactly (§4.1);
* it may not carry ``client_secret`` or ``client_secret_expires_at``, nor name a
  shared-secret ``token_endpoint_auth_method`` (§4.1): there is no one to share it with;
* ``client_name`` and ``redirect_uris`` are required (MCP);
* under ``mode: allowlist`` the URL must be a selected managed entry's ``cimd_client_ids``
  or match ``cimd.allow``; ``mode: disabled`` refuses CIMD clients too;
* a managed entry's URL must bring that entry's redirect URIs (the engine's verdict must
  name that entry), so a look-alike document at a vendor's URL cannot borrow its name.

Everything else in the document is judged as the body of a registration would be.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway import rules
from gateway.errors import OAuthError
from gateway.policy.decision import Decision, RequestContext
from gateway.policy.judge import judge
from gateway.policy.model import Mode, Policy
from gateway.uri.parse import URIRefusal, parse_metadata_url, parse_redirect_uri

SHARED_SECRET_METHODS = frozenset(
    {"client_secret_basic", "client_secret_post", "client_secret_jwt"}
)
#: Fields of the document that describe the document, not the client to register.
NOT_METADATA = frozenset({"client_id", "client_id_issued_at"})


def judge_document(
    policy: Policy,
    url: str,
    document: Mapping[str, Any],
    context: RequestContext | None = None,
) -> Decision:
    """The verdict on the document fetched from ``url``."""
    metadata = {k: v for k, v in document.items() if k not in NOT_METADATA}
    refusal = _document_refusal(policy, url, document)
    if refusal is not None:
        return Decision.deny(refusal, metadata)
    decision = judge(policy, metadata, context)
    entry = policy.cimd.managed.get(url)
    if (
        decision.allowed
        and entry is not None
        and decision.vendor != entry
        and policy.protect_identities
    ):
        return Decision.deny(
            rules.CIMD_IDENTITY.refuse(
                f"'{url}' is the client id of the managed client '{entry}', but the "
                "document's redirect URIs are not that client's"
            ),
            metadata,
        )
    return decision


def url_refusal(url: str) -> OAuthError | None:
    """``cimd.invalid_url`` when ``url`` cannot be a metadata document's URL: https on a
    public host name, with a path, no fragment (the draft's section 3); checked before any
    fetch."""
    parsed = parse_metadata_url(url)
    if isinstance(parsed, URIRefusal) or "#" in url or parsed.path in ("", "/"):
        return rules.CIMD_INVALID_URL.refuse(
            "the client id is not a valid metadata document URL "
            "(draft-ietf-oauth-client-id-metadata-document section 3)"
        )
    return None


def listed(policy: Policy, url: str) -> str | None:
    """How ``url`` is on the policy's CIMD lists: ``managed:<id>``, ``cimd:<pattern>`` or
    ``None``."""
    entry = policy.cimd.managed.get(url)
    if entry is not None:
        return f"managed:{entry}"
    parsed = parse_redirect_uri(url)
    if isinstance(parsed, URIRefusal):
        return None
    match = policy.cimd.allow.match(parsed)
    return None if match is None else f"cimd:{match.pattern}"


def _document_refusal(policy: Policy, url: str, document: Mapping[str, Any]) -> Exception | None:
    if policy.mode is Mode.DISABLED:
        return rules.MODE_DISABLED.refuse(
            "client registration is disabled by policy, for metadata documents too"
        )
    listing_applies = policy.mode is Mode.ALLOWLIST and not policy.cimd.any_allowed
    if listing_applies and listed(policy, url) is None:
        return rules.CIMD_NOT_ALLOWED.refuse(
            f"the client id '{url}' is not on this server's list of metadata documents "
            "(a managed client's, or cimd.allow)"
        )
    if document.get("client_id") != url:
        return rules.CIMD_CLIENT_ID_MISMATCH.refuse(
            "the document's client_id is not the URL it was fetched from "
            "(draft-ietf-oauth-client-id-metadata-document section 4.1)"
        )
    for secret in ("client_secret", "client_secret_expires_at"):
        if secret in document:
            return rules.CIMD_SECRET.refuse(f"a metadata document may not carry {secret}")
    method = document.get("token_endpoint_auth_method")
    if method in SHARED_SECRET_METHODS:
        return rules.CIMD_SECRET.refuse(
            f"token_endpoint_auth_method {method} needs a shared secret, which a metadata "
            "document cannot have"
        )
    for field in ("client_name", "redirect_uris"):
        if field not in document:
            return rules.CIMD_MISSING.refuse(f"the metadata document has no {field}")
    return None
