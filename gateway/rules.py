"""Every rule id the gateway can answer with: id -> wire error, status, stage and meaning.

A rule id is a stable interface: it is what an audit event's ``rule`` says, what a policy
case expects, and what ``docs/policy.md`` explains.  They are all defined here, once, so a
reader finds ``redirect_uri.not_allowed`` in one place with its error class (and therefore
its status) and its meaning; the docs table is generated from this registry
(``python -m gateway.rules``) and a test fails when the two drift, or when a policy rule has
no policy case.

Modules refuse through a rule (``MODE_DISABLED.refuse("...")``) rather than naming an error
class and an id separately, so the pairing cannot differ from one call site to another.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from gateway.errors import (
    AccessDenied,
    BadGateway,
    Conflict,
    GatewayTimeout,
    InvalidClient,
    InvalidClientMetadata,
    InvalidRedirectURI,
    InvalidRequest,
    InvalidToken,
    MethodNotAllowed,
    NotFound,
    OAuthError,
    PayloadTooLarge,
    RateLimited,
    RequestTimeout,
    TemporarilyUnavailable,
    UnapprovedSoftwareStatement,
    UnsupportedMediaType,
)


class Stage(StrEnum):
    """Where a rule is applied; policy and body rules are reachable from policy cases."""

    REQUEST = "request"  # HTTP-level hygiene before the body is read
    BODY = "body"  # the JSON body and RFC 7591 types
    POLICY = "policy"  # the policy engine's decision
    DOCUMENT = "document"  # a Client ID Metadata Document's own checks, before the engine
    GATEWAY = "gateway"  # controls around the decision (limits, tokens)
    UPSTREAM = "upstream"  # the authorization server's side
    ALLOW = "allow"  # the rule that allowed a request


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    error: type[OAuthError] | None
    stage: Stage
    meaning: str

    @property
    def status(self) -> int | None:
        return self.error.status if self.error is not None else None

    def refuse(self, description: str, **extra: Any) -> OAuthError:
        """The wire error for this rule, with ``description`` saying why."""
        return self.refuse_as(self.id, description, **extra)

    def refuse_as(self, rule_id: str, description: str, **extra: Any) -> OAuthError:
        """The wire error of a rule family (``rate_limit.<name>``) under one member's id."""
        if self.error is None:
            raise TypeError(f"{self.id} allows; it cannot refuse")
        family = self.id.split("<", 1)[0]
        if rule_id != self.id and not (family.endswith(".") and rule_id.startswith(family)):
            raise ValueError(f"{rule_id} is not a member of {self.id}")
        return self.error(description, rule=rule_id, **extra)


RULES: dict[str, Rule] = {}


def _rule(rule_id: str, error: type[OAuthError] | None, stage: Stage, meaning: str) -> Rule:
    if rule_id in RULES:
        raise ValueError(f"rule {rule_id} defined twice")
    rule = Rule(rule_id, error, stage, meaning)
    RULES[rule_id] = rule
    return rule


def get(rule_id: str) -> Rule:
    """The rule with this id; unknown ids are a programming error."""
    return RULES[rule_id]


def by_stage(stage: Stage) -> Iterator[Rule]:
    return (rule for rule in RULES.values() if rule.stage is stage)


# --------------------------------------------------------------------------- allow
ALLOW_OPEN = _rule(
    "allow.open",
    None,
    Stage.ALLOW,
    "`mode: open`; every redirect URI passed hygiene and the block list",
)
ALLOW_MANAGED = _rule(
    "allow.managed", None, Stage.ALLOW, "every redirect URI matched the managed list"
)
ALLOW_CUSTOM = _rule(
    "allow.custom", None, Stage.ALLOW, "every redirect URI matched the custom list"
)
ALLOW_MIXED = _rule(
    "allow.mixed", None, Stage.ALLOW, "some matched the managed list, some the custom list"
)
ALLOW_MANAGEMENT = _rule(
    "allow.management",
    None,
    Stage.GATEWAY,
    "a read or delete of a client's configuration (RFC 7592 §2.1, §2.3), forwarded: the "
    "authorization server checks the registration access token",
)
ALLOW_NO_REDIRECT_URIS = _rule(
    "allow.no_redirect_uris",
    None,
    Stage.ALLOW,
    "the request has no redirect URIs and needs none (e.g. `client_credentials` only, "
    "when allowed)",
)

# --------------------------------------------------------------------------- request
REQUEST_METHOD = _rule(
    "request.method", MethodNotAllowed, Stage.REQUEST, "not POST on the registration endpoint"
)
REQUEST_CONTENT_TYPE = _rule(
    "request.content_type",
    UnsupportedMediaType,
    Stage.REQUEST,
    "not `application/json`, or a charset other than UTF-8",
)
REQUEST_CONTENT_ENCODING = _rule(
    "request.content_encoding", UnsupportedMediaType, Stage.REQUEST, "any `Content-Encoding`"
)
REQUEST_TOO_LARGE = _rule(
    "request.too_large",
    PayloadTooLarge,
    Stage.REQUEST,
    "over `limits.max_body_bytes`, chunked bodies included",
)
REQUEST_TIMEOUT = _rule(
    "request.timeout",
    RequestTimeout,
    Stage.REQUEST,
    "the body did not arrive within `limits.body_timeout` (a stalled sender, or chunked "
    "framing that broke mid-body)",
)
REQUEST_BAD_FRAMING = _rule(
    "request.bad_framing", InvalidRequest, Stage.REQUEST, "the body's chunked framing is invalid"
)
REQUEST_TARGET = _rule(
    "request.target",
    InvalidRequest,
    Stage.REQUEST,
    "the request target is not an absolute path (`OPTIONS *`)",
)
REQUEST_MALFORMED = _rule(
    "request.malformed",
    InvalidRequest,
    Stage.REQUEST,
    "the HTTP parser refused the request before any handler ran (bad chunk size, folded or "
    "oversized headers, bare CR, a non-UTF-8 target, an unsupported content coding)",
)
CLIENT_DISCONNECTED = _rule(
    "client.disconnected",
    InvalidRequest,
    Stage.REQUEST,
    "the client closed the connection before the gateway answered",
)

# --------------------------------------------------------------------------- routing
PROVIDER_REFUSED = _rule(
    "provider.not_allowed",
    AccessDenied,
    Stage.REQUEST,
    "a Keycloak client registration provider other than `openid-connect` (`default`, "
    "`install`, `saml2-entity-descriptor`), which creates clients without OIDC metadata "
    "checks, and `keycloak.allow_providers` does not list it",
)
MANAGEMENT_NOT_A_CLIENT = _rule(
    "management.not_a_client",
    NotFound,
    Stage.REQUEST,
    "a path below the registration endpoint that is not one client configuration endpoint "
    "(`<registration path>/<client id>`, RFC 7592 §2)",
)
TENANT_CASE_MISMATCH = _rule(
    "tenant.case_mismatch",
    NotFound,
    Stage.REQUEST,
    "a realm that matches a configured tenant only when letter case is ignored (realm names "
    "are case-sensitive)",
)
KEYCLOAK_PREFIX_MISMATCH = _rule(
    "keycloak.prefix_mismatch",
    NotFound,
    Stage.REQUEST,
    "a Keycloak client registration path under another prefix than `upstream.path_prefix` "
    "(`/auth/realms/x/clients-registrations/...` when no prefix is set, or the reverse)",
)
MANAGEMENT_CLIENT_ID_MISMATCH = _rule(
    "management.client_id_mismatch",
    InvalidClientMetadata,
    Stage.REQUEST,
    "an update (RFC 7592 §2.2) whose `client_id` is missing or not the one in its path",
)

# --------------------------------------------------------------------------- body
BODY_INVALID_JSON = _rule(
    "request.invalid_json",
    InvalidClientMetadata,
    Stage.BODY,
    "not JSON, not UTF-8, `NaN`, too deep",
)
BODY_DUPLICATE_KEY = _rule(
    "request.duplicate_key",
    InvalidClientMetadata,
    Stage.BODY,
    "a key twice in one object (the description names it)",
)
BODY_NOT_OBJECT = _rule(
    "request.not_object", InvalidClientMetadata, Stage.BODY, "the body is not a JSON object"
)
METADATA_INVALID_TYPE = _rule(
    "metadata.invalid_type",
    InvalidClientMetadata,
    Stage.BODY,
    "a known field with the wrong JSON type (RFC 7591 §2)",
)
METADATA_TOO_MANY_VALUES = _rule(
    "metadata.too_many_values",
    InvalidClientMetadata,
    Stage.BODY,
    "more than any real client sends: over 100 metadata members, over 20 entries in "
    "`request_uris`, `contacts`, `grant_types`, `response_types` or `default_acr_values`, "
    "over 20 language-tagged variants of one field, or a `scope` of over 100 tokens or "
    "4096 characters",
)

# --------------------------------------------------------------------------- policy
MODE_DISABLED = _rule(
    "mode.disabled", AccessDenied, Stage.POLICY, "the policy disables dynamic registration"
)
SOFTWARE_STATEMENT_NOT_ACCEPTED = _rule(
    "software_statement.not_accepted",
    UnapprovedSoftwareStatement,
    Stage.POLICY,
    "a software statement was sent (its claims would override what was judged)",
)
GRANT_TYPE_NOT_ALLOWED = _rule(
    "grant_type.not_allowed",
    InvalidClientMetadata,
    Stage.POLICY,
    "a grant type outside `client.grant_types`, or an empty list",
)
RESPONSE_TYPE_NOT_ALLOWED = _rule(
    "response_type.not_allowed",
    InvalidClientMetadata,
    Stage.POLICY,
    "a response type outside `client.response_types`",
)
GRANT_TYPE_INCONSISTENT = _rule(
    "grant_type.inconsistent",
    InvalidClientMetadata,
    Stage.POLICY,
    "grant and response types disagree (RFC 7591 §2.1)",
)
CLIENT_NAME_HIDDEN_CHARACTERS = _rule(
    "client_name.hidden_characters",
    InvalidClientMetadata,
    Stage.POLICY,
    "the name contains a character that renders as nothing or reorders text: any "
    "Default_Ignorable_Code_Point (zero-width characters, variation selectors, the combining "
    "grapheme joiner, Hangul fillers), a bidirectional control, or a control character",
)
CLIENT_NAME_INVALID = _rule(
    "client_name.invalid",
    InvalidClientMetadata,
    Stage.POLICY,
    "the name is empty, longer than 256 characters, or contains unassigned or private-use "
    "code points",
)
CLIENT_NAME_DENIED = _rule(
    "client_name.denied",
    InvalidClientMetadata,
    Stage.POLICY,
    "the name's skeleton matches a `client_name.deny` glob",
)
CLIENT_NAME_IMPERSONATION = _rule(
    "client_name.impersonation",
    InvalidClientMetadata,
    Stage.POLICY,
    "the name claims a managed client's identity (its name, vendor or a name it sends, as a "
    "whole word, compared by confusable skeleton) with redirect URIs that are not that "
    "client's (`matched` names the entry)",
)
SOFTWARE_ID_INVALID = _rule(
    "software_id.invalid",
    InvalidClientMetadata,
    Stage.POLICY,
    "`software_id` is not printable ASCII without spaces (1-255 characters)",
)
SOFTWARE_ID_IMPERSONATION = _rule(
    "software_id.impersonation",
    InvalidClientMetadata,
    Stage.POLICY,
    "a managed client's `software_id` with redirect URIs that are not that client's",
)
IDENTITY_FOREIGN_HOST = _rule(
    "identity.foreign_host",
    InvalidClientMetadata,
    Stage.POLICY,
    "a request that is a managed client (by name, software_id or redirect URI) names a host "
    "that client does not own in another URL field (`logo_uri`, `jwks_uri`, "
    "`post_logout_redirect_uris`, ...)",
)
AUTH_METHOD_NOT_ALLOWED = _rule(
    "auth_method.not_allowed",
    InvalidClientMetadata,
    Stage.POLICY,
    "a token endpoint auth method outside the list",
)
SCOPE_NOT_ALLOWED = _rule(
    "scope.not_allowed",
    InvalidClientMetadata,
    Stage.POLICY,
    "a scope outside `scopes.allowed` (with `on_excess: reject`, or nothing left to trim)",
)
JWKS_CONFLICT = _rule(
    "jwks.conflict", InvalidClientMetadata, Stage.POLICY, "`jwks` and `jwks_uri` together"
)
REDIRECT_URI_MISSING = _rule(
    "redirect_uri.missing",
    InvalidRedirectURI,
    Stage.POLICY,
    "no redirect URIs for a redirect-based grant",
)

#: Rules shared by ``redirect_uris`` and ``post_logout_redirect_uris`` (the latter with
#: the prefix ``post_logout_redirect_uri.``): hygiene from :mod:`gateway.uri.parse`, then
#: the policy's own checks.
URI_RULES: dict[str, str] = {
    "too_long": "longer than 2,000 characters",
    "control_character": (
        "a control character, DEL, whitespace (including Unicode spaces) or an invisible "
        "formatting character, raw or percent-encoded (%00-%1F, %7F)"
    ),
    "relative": "no scheme: a relative reference is not a redirect URI (RFC 6749 §3.1.2)",
    "dangerous_scheme": "`javascript:`, `data:`, `file:`, `vbscript:`, `blob:`, `about:`",
    "backslash": "a backslash, which browsers read as `/` (WHATWG URL)",
    "fragment": "a fragment ('#'), forbidden by RFC 6749 §3.1.2",
    "encoded_separator": "`%2F` or `%5C` (also double-encoded) in the host or path",
    "userinfo": "`@` (raw or encoded) in the authority (RFC 3986 §3.2.1)",
    "dot_segment": "a `.` or `..` path segment, raw, percent-encoded or with `;params`",
    "wildcard": "a literal `*`; wildcards belong in policy patterns, not in URIs",
    "malformed": (
        "does not parse strictly as an RFC 3986 URI with a valid host and port (bad port, bad "
        "host, bad percent-encoding, characters outside RFC 3986, non-canonical IPv4)"
    ),
    "unstable_host": (
        "an internationalized host whose ASCII form is not the same for every IDNA "
        "implementation: a deviation character (ß, ς, ZWJ, ZWNJ), a difference between "
        "transitional and non-transitional UTS #46, a code point newer than Unicode 14 or "
        "whose mapping changed between Unicode versions"
    ),
    "no_host": "an http or https URI without a host",
    "insecure_http": ("`http` on a host that is not loopback (RFC 8252 §8.3, RFC 6749 §3.1.2.1)"),
    "too_many": "more URIs than the policy's `max_redirect_uris` (default 20)",
    "loopback_denied": "a loopback URI under `loopback: deny`",
    "blocked": "the URI matches a `block` pattern (`matched` names it)",
    "not_allowed": "`allowlist` mode and the URI matches no approved pattern",
}
for _prefix in ("redirect_uri", "post_logout_redirect_uri"):
    for _suffix, _meaning in URI_RULES.items():
        _rule(f"{_prefix}.{_suffix}", InvalidRedirectURI, Stage.POLICY, _meaning)

#: URL-valued metadata that the authorization server fetches (``jwks_uri``,
#: ``sector_identifier_uri``, ``request_uris``, ``backchannel_logout_uri``) or that browsers
#: fetch or show (``logo_uri``, ``client_uri``, ``policy_uri``, ``tos_uri``,
#: ``initiate_login_uri``, ``frontchannel_logout_uri``): the same parser's hygiene rules, and
#: these.
METADATA_URL_RULES: dict[str, str] = {
    **{
        key: URI_RULES[key]
        for key in (
            "too_long",
            "control_character",
            "relative",
            "dangerous_scheme",
            "backslash",
            "fragment",
            "encoded_separator",
            "userinfo",
            "dot_segment",
            "wildcard",
            "malformed",
            "unstable_host",
            "no_host",
        )
    },
    "not_https": "not an `https` URL",
    "ip_address": "an IP address (in any IPv4 or IPv6 notation) instead of a DNS host name",
    "internal_host": (
        "`localhost`, a single-label host, or a special-use or private name (`.local`, "
        "`.internal`, `.localhost`, `.home.arpa`, `.lan`, ...): SSRF through the "
        "authorization server (Keycloak CVE-2026-1180, CVE-2026-4366, MITREid CVE-2021-26715)"
    ),
    "host_not_allowed": (
        "a fetched URL (`jwks_uri`, `sector_identifier_uri`, `request_uris`) on a host outside "
        "`client.fetched_url_hosts`"
    ),
}
for _suffix, _meaning in METADATA_URL_RULES.items():
    _rule(f"metadata_url.{_suffix}", InvalidClientMetadata, Stage.POLICY, _meaning)

# --------------------------------------------------------------------------- gateway
INTERNAL_ERROR = _rule(
    "internal.error",
    BadGateway,
    Stage.GATEWAY,
    "an unexpected fault in the gateway, logged and answered 502 (never 500)",
)

RATE_LIMITED = _rule(
    "rate_limit.<name>",
    RateLimited,
    Stage.GATEWAY,
    "the policy's rate limit `<name>` (`rate_limits`) is reached; `Retry-After` says when "
    "one more request fits",
)
STORAGE_UNAVAILABLE = _rule(
    "storage.unavailable",
    TemporarilyUnavailable,
    Stage.GATEWAY,
    "the storage (Redis) holding rate limits and token uses cannot be reached, and the "
    "policy fails closed (`on_storage_error: fail_closed`, the default; initial access "
    "tokens always do)",
)
TOKEN_MISSING = _rule(
    "initial_access_token.missing",
    InvalidToken,
    Stage.GATEWAY,
    "`initial_access_tokens.required` and no `Authorization: Bearer` token (RFC 7591 §3)",
)
TOKEN_MALFORMED = _rule(
    "initial_access_token.malformed",
    InvalidToken,
    Stage.GATEWAY,
    "an `Authorization` header that is not one `Bearer` token (RFC 6750 §2.1)",
)
TOKEN_UNKNOWN = _rule(
    "initial_access_token.unknown",
    InvalidToken,
    Stage.GATEWAY,
    "a bearer token that is no initial access token of this policy, nor one issued by the "
    "admin API for this tenant (or revoked)",
)
TOKEN_EXPIRED = _rule(
    "initial_access_token.expired", InvalidToken, Stage.GATEWAY, "the token's `expires` passed"
)
TOKEN_USED_UP = _rule(
    "initial_access_token.used_up",
    InvalidToken,
    Stage.GATEWAY,
    "the token has registered `max_uses` clients already",
)
ADMIN_DISABLED = _rule(
    "admin.disabled",
    AccessDenied,
    Stage.GATEWAY,
    "the admin API is off: no `admin.token_env` is configured",
)
ADMIN_UNAUTHORIZED = _rule(
    "admin.unauthorized",
    InvalidToken,
    Stage.GATEWAY,
    "an admin request without the admin bearer token",
)
ADMIN_INVALID = _rule(
    "admin.invalid_request",
    InvalidRequest,
    Stage.GATEWAY,
    "an admin request whose body or parameters are not valid",
)
ADMIN_CONFLICT = _rule(
    "admin.conflict", Conflict, Stage.GATEWAY, "a token of that name exists already"
)
ADMIN_NOT_FOUND = _rule("admin.not_found", NotFound, Stage.GATEWAY, "no token of that name")
ADMIN_METHOD = _rule(
    "admin.method", MethodNotAllowed, Stage.GATEWAY, "a method the admin endpoint does not have"
)
ALLOW_ADMIN = _rule(
    "allow.admin", None, Stage.GATEWAY, "an admin request, authenticated and carried out"
)
ADMIN_NO_CLIENT = _rule(
    "admin.no_such_client",
    NotFound,
    Stage.GATEWAY,
    "an admin request names a client the registry does not know",
)
ADMIN_COUNT_CHANGED = _rule(
    "admin.count_changed",
    Conflict,
    Stage.GATEWAY,
    "a bulk delete's `expected_count` is not the number of clients its filter matches now "
    "(run it with `dry_run` first)",
)
ADMIN_STATUS = _rule(
    "admin.wrong_status",
    Conflict,
    Stage.GATEWAY,
    "an approval or rejection of a client whose status does not allow it (deleted, or "
    "changed by someone else meanwhile)",
)
ADMIN_DELETE_FAILED = _rule(
    "admin.upstream_delete_failed",
    BadGateway,
    Stage.GATEWAY,
    "an administrator's delete of a client failed upstream (or no usable registration "
    "access token is kept); the client is kept, flagged `deleting`, and retried",
)
ADMIN_POLICY_INVALID = _rule(
    "admin.policy_invalid",
    Conflict,
    Stage.GATEWAY,
    "a policy reload (`POST /-/admin/policy/reload`) whose files do not load: the policies "
    "in force stay; the answer names the first problem with its `file:line`",
)
CIMD_DISABLED = _rule(
    "cimd.disabled",
    InvalidClient,
    Stage.GATEWAY,
    "a URL `client_id` (a Client ID Metadata Document) while `cimd.enabled` is off: refused "
    "rather than passed to an authorization server that might accept it unjudged",
)
CIMD_INVALID_URL = _rule(
    "cimd.invalid_url",
    InvalidClient,
    Stage.GATEWAY,
    "the `client_id` URL is not one a metadata document may have: https, a path, no dot "
    "segments, fragment or user info, a public host name",
)
CIMD_NOT_ALLOWED = _rule(
    "cimd.not_allowed",
    InvalidClient,
    Stage.DOCUMENT,
    "`mode: allowlist` and the client_id URL is neither a managed client's nor matched by "
    "`cimd.allow`",
)
CIMD_CLIENT_ID_MISMATCH = _rule(
    "cimd.client_id_mismatch",
    InvalidClient,
    Stage.DOCUMENT,
    "the document's `client_id` is not exactly the URL it was fetched from",
)
CIMD_SECRET = _rule(
    "cimd.shared_secret",
    InvalidClient,
    Stage.DOCUMENT,
    "the document carries `client_secret` or names a shared-secret auth method",
)
CIMD_MISSING = _rule(
    "cimd.missing_field",
    InvalidClient,
    Stage.DOCUMENT,
    "the document lacks `client_name` or `redirect_uris`",
)
CIMD_IDENTITY = _rule(
    "cimd.identity_mismatch",
    InvalidClient,
    Stage.DOCUMENT,
    "a managed client's client_id URL whose document does not bring that client's redirect URIs",
)
CIMD_REDIRECT_URI = _rule(
    "cimd.redirect_uri_mismatch",
    InvalidClient,
    Stage.GATEWAY,
    "the authorization request's `redirect_uri` is not one of the document's (exact, but "
    "for the port of a loopback URI, RFC 8252 §7.3)",
)
CIMD_UNSUPPORTED_AUTH = _rule(
    "cimd.unsupported_auth",
    InvalidClient,
    Stage.GATEWAY,
    "bridge mode takes `none` and `private_key_jwt` clients; another "
    "`token_endpoint_auth_method`, or `private_key_jwt` without `registry.key_env` on shared "
    "storage (the bridged client's secret is kept sealed), is refused",
)
CIMD_CLIENT_AUTH = _rule(
    "cimd.client_auth",
    InvalidClient,
    Stage.GATEWAY,
    "a bridged client's authentication at the token endpoint failed: a `private_key_jwt` "
    "client's assertion is missing, badly signed, for another audience, expired, too "
    "long-lived or replayed (RFC 7523 §3); a `none` client sent credentials",
)
CIMD_JWKS = _rule(
    "cimd.jwks",
    InvalidClient,
    Stage.GATEWAY,
    "a `private_key_jwt` document's keys cannot be used: neither or both of `jwks` and "
    "`jwks_uri`, a `jwks_uri` that cannot be fetched safely, private or symmetric key "
    "material, no signing key",
)
CIMD_FETCH = _rule(
    "cimd.fetch.<kind>",
    InvalidClient,
    Stage.GATEWAY,
    "the document could not be fetched safely: `private_address`, `too_large`, `not_json`, "
    "`redirect`, `timeout`, `status`, `content_type`, `content_encoding`, `rate_limited`, "
    "`tls`, `failed` (never cached)",
)
CIMD_NOT_BRIDGED = _rule(
    "cimd.not_bridged",
    InvalidClient,
    Stage.GATEWAY,
    "a token (or revocation, introspection) request for a metadata document URL no client "
    "was bridged for yet: the client starts at the authorization endpoint",
)
CIMD_BRIDGE_FAILED = _rule(
    "cimd.bridge_failed",
    BadGateway,
    Stage.UPSTREAM,
    "the upstream refused or failed to register the bridged client for a metadata document",
)
CLIENT_PENDING = _rule(
    "approval.pending",
    InvalidClient,
    Stage.GATEWAY,
    "the client awaits an administrator's approval (`approval.required`): its authorization "
    "requests get a page saying so, its token requests 401 `invalid_client`",
)
CLIENT_REJECTED = _rule(
    "client.rejected",
    InvalidClient,
    Stage.GATEWAY,
    "an administrator rejected the client; it is deleted upstream and refused here",
)
CLIENT_DELETED = _rule(
    "client.deleted",
    InvalidClient,
    Stage.GATEWAY,
    "the gateway deleted the client (cleanup, expiry, eviction or an administrator); "
    "a client registers again",
)
QUOTA_VENDOR = _rule(
    "quota.max_clients_per_vendor",
    AccessDenied,
    Stage.GATEWAY,
    "the vendor has `quotas.max_clients_per_vendor` live clients in this tenant, and none "
    "could be evicted (`on_full: reject`, or none idle long enough)",
)
QUOTA_TOTAL = _rule(
    "quota.max_clients",
    AccessDenied,
    Stage.GATEWAY,
    "the tenant has `quotas.max_clients` live clients, and none could be evicted",
)

# --------------------------------------------------------------------------- upstream
UPSTREAM_UNREACHABLE = _rule(
    "upstream.unreachable",
    BadGateway,
    Stage.UPSTREAM,
    "the authorization server refused or dropped the connection",
)
UPSTREAM_TIMEOUT = _rule(
    "upstream.timeout", GatewayTimeout, Stage.UPSTREAM, "no answer within `upstream.timeout`"
)
UPSTREAM_RESPONSE_TOO_LARGE = _rule(
    "upstream.response_too_large",
    BadGateway,
    Stage.UPSTREAM,
    "the registration answer is larger than `limits.max_response_bytes`",
)
UPSTREAM_ENCODING = _rule(
    "upstream.unreadable_encoding",
    BadGateway,
    Stage.UPSTREAM,
    "a registration, management or discovery answer in a content coding the gateway cannot "
    "read (it asks for `identity`; `gzip` and `deflate` are decoded)",
)


def storage_unavailable() -> OAuthError:
    """503 when the store holding limits and token uses cannot be reached (fail closed)."""
    return STORAGE_UNAVAILABLE.refuse(
        "the gateway's storage is unavailable and the request cannot be checked; retry later"
    )


def internal_error() -> OAuthError:
    """An unexpected fault, answered 502 rather than 500 (it is logged where caught)."""
    return INTERNAL_ERROR.refuse("the gateway could not complete the request")


def _family(rule: Rule) -> str:
    return rule.id.split(".", 1)[0]


#: The tables of ``docs/policy.md``, each between ``<!-- rules:NAME -->`` markers; the
#: ``post_logout_redirect_uri.*`` rules mirror ``redirect_uri.*`` and are not listed twice.
DOC_SECTIONS: dict[str, Callable[[Rule], bool]] = {
    "allow": lambda r: r.stage is Stage.ALLOW,
    "policy": lambda r: (
        (
            r.stage is Stage.POLICY
            and _family(r) not in ("redirect_uri", "post_logout_redirect_uri", "metadata_url")
        )
        or r.id == "redirect_uri.missing"
    ),
    "redirect_uri": lambda r: _family(r) == "redirect_uri" and r.id != "redirect_uri.missing",
    "metadata_url": lambda r: _family(r) == "metadata_url",
    "request": lambda r: r.stage in (Stage.REQUEST, Stage.BODY),
    "cimd": lambda r: _family(r) == "cimd",
    "gateway": lambda r: r.stage in (Stage.GATEWAY, Stage.UPSTREAM) and _family(r) != "cimd",
}


def markdown_table(section: str) -> str:
    """The rules of one ``docs/policy.md`` section as a Markdown table."""
    lines = ["| rule | status, error | meaning |", "| --- | --- | --- |"]
    for rule in RULES.values():
        if not DOC_SECTIONS[section](rule):
            continue
        answer = f"{rule.error.status} `{rule.error.error}`" if rule.error else "allowed"
        lines.append(f"| `{rule.id}` | {answer} | {rule.meaning} |")
    return "\n".join(lines)


def render_docs(text: str) -> str:
    """``text`` (a Markdown document) with every rules section regenerated."""
    for section in DOC_SECTIONS:
        begin, end = f"<!-- rules:{section} -->", f"<!-- /rules:{section} -->"
        head, found, rest = text.partition(begin)
        if not found:
            raise ValueError(f"no {begin} marker")
        _, found, tail = rest.partition(end)
        if not found:
            raise ValueError(f"no {end} marker")
        text = f"{head}{begin}\n{markdown_table(section)}\n{end}{tail}"
    return text


if __name__ == "__main__":  # pragma: no cover - a documentation helper
    import sys
    from pathlib import Path

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/policy.md")
    target.write_text(render_docs(target.read_text(encoding="utf-8")), encoding="utf-8")
