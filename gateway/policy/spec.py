"""The policy file's keys, declared once as data: the loader's known keys and the JSON Schema.

Every section of a policy (version 1) is a :class:`Section` here, with each key's JSON Schema
fragment, default and one-line description.  The loader (:mod:`gateway.policy.loader`,
:mod:`gateway.policy.controls`, :mod:`gateway.policy.lifecycle`) takes its known keys from
these sections, and :mod:`gateway.policy.schema` walks the same tree to write
``policies/policy.schema.json`` (JSON Schema draft 2020-12), so an editor's completion and the
loader cannot disagree about which keys exist.  The schema says what a key's value looks
like; the loader still checks what a schema cannot (patterns that could never match, managed
ids that do not exist, a default scope outside the allowed ones).

Adding a key: add it to its section below, read it in the loader, then regenerate the schema
with ``python -m gateway.policy.schema`` (a test fails until the shipped file matches).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gateway.config.reader import DURATION_PATTERN
from gateway.policy.model import (
    AutoApprove,
    Enforcement,
    Mode,
    OnExcess,
    OnMismatch,
    OnQuotaFull,
    OnStorageError,
    RateCount,
    RateKey,
)
from gateway.policy.patterns import LoopbackMode

Schema = Mapping[str, Any]

#: Known values (RFC 7591 §2, the IANA OAuth registry); other grant types must be URIs.
AUTH_METHODS = frozenset(
    {
        "none",
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
        "private_key_jwt",
        "tls_client_auth",
        "self_signed_tls_client_auth",
    }
)
GRANT_TYPES = frozenset(
    {
        "authorization_code",
        "implicit",
        "password",
        "client_credentials",
        "refresh_token",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "urn:ietf:params:oauth:grant-type:saml2-bearer",
        "urn:ietf:params:oauth:grant-type:device_code",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    }
)
RESPONSE_TYPE_PARTS = ("code", "token", "id_token", "none")

DEFAULT_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
DEFAULT_GRANT_TYPES = ("authorization_code", "refresh_token")
DEFAULT_RESPONSE_TYPES = ("code",)
DEFAULT_SCOPES_ALLOWED = ("openid", "profile", "email", "offline_access")
DEFAULT_SCOPES = ("openid", "offline_access")
#: Real MCP clients register at most 6 redirect URIs; the cap bounds a decision's cost.
DEFAULT_MAX_REDIRECT_URIS = 20
MAX_REDIRECT_URIS = 50

#: RFC 6749 §3.3 scope-token.
SCOPE_TOKEN_PATTERN = r"^[\x21\x23-\x5b\x5d-\x7e]+$"  # noqa: S105 (a regex)
#: Rate-limit rule and token names become rule ids (``rate_limit.<name>``) and storage keys.
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
SHA256_PATTERN = r"^[0-9a-fA-F]{64}$"
#: Ids of managed-list entries (``policies/managed/mcp-clients.yaml``).
MANAGED_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
#: The longest window a rate limit may have; longer ones are quotas.
MAX_WINDOW_SECONDS = 31 * 86400
MAX_RULES = 20
MAX_TOKENS = 10_000
#: A client must be given at least this long before cleanup may call it unused.
MIN_CLEANUP_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Value:
    """A key holding a value: its JSON Schema, default (``None``: none to show) and meaning."""

    schema: Schema
    description: str
    default: Any = None


@dataclass(frozen=True, slots=True)
class Section:
    """A mapping with a fixed set of keys (unknown keys are errors); absent or empty means
    every default."""

    description: str
    keys: Mapping[str, Node]
    required: tuple[str, ...] = ()
    #: ``False`` for the document itself and list entries, which cannot be empty.
    nullable: bool = True

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.keys)


@dataclass(frozen=True, slots=True)
class Entries:
    """A list of mappings of one kind (``rate_limits``, ``initial_access_tokens.tokens``)."""

    description: str
    entry: Section
    max_items: int | None = None
    default: tuple[Any, ...] = field(default=())


Node = Value | Section | Entries


# --------------------------------------------------------------------------- value shapes
def choice(enum: type[StrEnum] | tuple[str, ...]) -> Schema:
    values = [str(member) for member in enum]
    return {"type": "string", "enum": values}


def string_list(items: Schema | None = None) -> Schema:
    """A list (``null``: empty) of strings, each as ``items`` says."""
    return {"type": ["array", "null"], "items": dict(items or NONEMPTY)}


NONEMPTY: Schema = {"type": "string", "minLength": 1, "pattern": r"\S"}
PATTERN: Schema = {
    "type": "string",
    "minLength": 1,
    "description": "a redirect URI pattern (docs/redirect-uris.md); quote one that starts "
    "with `*`, which YAML reads as an alias",
}
DURATION: Schema = {
    "anyOf": [
        {"type": "number", "exclusiveMinimum": 0},
        {"type": "string", "pattern": DURATION_PATTERN},
    ],
    "description": "a duration: 30s, 500ms, 5m, 1h, 30d, or seconds",
}
MANAGED_SELECTION: Schema = {
    "anyOf": [
        {"type": "string", "enum": ["all", "none"]},
        {"type": "null"},
        {"type": "array", "items": {"type": "string", "pattern": MANAGED_ID_PATTERN}},
    ]
}
HOST: Schema = {"type": "string", "minLength": 1, "pattern": r"^[^\s/:@?#]+\.[^\s/:@?#]+$"}


def report_only_value() -> Value:
    """``report_only`` of a rule group (docs/policy.md, "Report-only")."""
    return Value(
        {"type": "boolean"},
        "audit this group's refusals as would_deny and forward the request (a rollout)",
        False,
    )


# --------------------------------------------------------------------------- sections
REDIRECT = Section(
    "How redirect URIs are judged (docs/redirect-uris.md).",
    {
        "managed_list": Value(
            MANAGED_SELECTION,
            "the managed list entries that are approved: all, none, or a list of entry ids",
            "all",
        ),
        "allow": Value(string_list(PATTERN), "the custom list: redirect URI patterns", []),
        "block": Value(
            string_list(PATTERN),
            "patterns refused in every mode, checked before the allow lists",
            [],
        ),
        "loopback": Value(
            choice(LoopbackMode),
            "loopback redirect URIs: any_port (RFC 8252 §7.3), exact or deny",
            LoopbackMode.ANY_PORT.value,
        ),
        "on_mismatch": Value(
            choice(OnMismatch),
            "when some redirect URIs are refused: reject the request, or drop those URIs",
            OnMismatch.REJECT.value,
        ),
        "max_redirect_uris": Value(
            {"type": "integer", "minimum": 1, "maximum": MAX_REDIRECT_URIS},
            "requests with more redirect (or post-logout) URIs are refused",
            DEFAULT_MAX_REDIRECT_URIS,
        ),
        "report_only": report_only_value(),
    },
)

SCOPES = Section(
    "The scopes a client may register (RFC 7591 §2, RFC 6749 §3.3).",
    {
        "allowed": Value(
            {
                "anyOf": [
                    {"const": "any"},
                    string_list({"type": "string", "pattern": SCOPE_TOKEN_PATTERN}),
                ]
            },
            "the scopes a client may register, or any",
            list(DEFAULT_SCOPES_ALLOWED),
        ),
        "default": Value(
            string_list({"type": "string", "pattern": SCOPE_TOKEN_PATTERN}),
            "injected when the request names no scope",
            list(DEFAULT_SCOPES),
        ),
        "on_excess": Value(
            choice(OnExcess),
            "a scope outside allowed: reject the request, or trim the scope",
            OnExcess.REJECT.value,
        ),
    },
)

CLIENT_NAME = Section(
    "client_name rules (docs/policy.md, Identity).",
    {
        "deny": Value(
            string_list(),
            "globs on the whole name as a reader sees it; quote one that starts with `*`",
            [],
        ),
        "unprotected": Value(string_list(), "managed identities this policy does not protect", []),
    },
)

CLIENT = Section(
    "Rules on the client metadata (RFC 7591 §2).",
    {
        "report_only": report_only_value(),
        "token_endpoint_auth_methods": Value(
            string_list(choice(tuple(sorted(AUTH_METHODS)))),
            "the token endpoint auth methods a client may register",
            list(DEFAULT_AUTH_METHODS),
        ),
        "default_token_endpoint_auth_method": Value(
            choice(tuple(sorted(AUTH_METHODS))),
            "injected when the request names none",
            "client_secret_basic",
        ),
        "grant_types": Value(
            string_list(
                {
                    "anyOf": [
                        choice(tuple(sorted(GRANT_TYPES))),
                        {"type": "string", "pattern": ":"},
                    ]
                }
            ),
            "the grant types a client may register (others must be URIs)",
            list(DEFAULT_GRANT_TYPES),
        ),
        "response_types": Value(
            string_list(
                {
                    "type": "string",
                    "pattern": "^({0})( ({0}))*$".format("|".join(RESPONSE_TYPE_PARTS)),
                }
            ),
            "the response types a client may register",
            list(DEFAULT_RESPONSE_TYPES),
        ),
        "scopes": SCOPES,
        "client_name": CLIENT_NAME,
        "fetched_url_hosts": Value(
            string_list(HOST),
            "when set, the only hosts (and subdomains) of URLs the authorization server "
            "fetches: jwks_uri, sector_identifier_uri, request_uris",
        ),
    },
)

RATE_RULE = Section(
    "One rate limit: rule id rate_limit.<name>.",
    {
        "name": Value({"type": "string", "pattern": NAME_PATTERN}, "the rule's name"),
        "key": Value(choice(RateKey), "what a request is counted by"),
        "limit": Value(
            {"type": "string", "minLength": 1},
            "a rate in the limits library's syntax: 20/hour, 30/minute;600/hour",
        ),
        "count": Value(
            choice(RateCount),
            "attempts (every request) or registrations (clients created)",
            RateCount.ATTEMPTS.value,
        ),
    },
    required=("name", "key", "limit"),
    nullable=False,
)

TOKEN = Section(
    "One initial access token, listed by its hash (dcr-gateway hash-token).",
    {
        "name": Value({"type": "string", "pattern": NAME_PATTERN}, "the token's name"),
        "sha256": Value(
            {"type": "string", "pattern": SHA256_PATTERN}, "the token's SHA-256, in hex"
        ),
        "expires": Value(
            {"type": "string", "format": "date-time"},
            "an ISO 8601 date-time with a time zone, e.g. 2027-06-30T00:00:00Z",
        ),
        "max_uses": Value(
            {"type": "integer", "minimum": 1, "maximum": 10**9},
            "how many clients the token may register",
        ),
        "policy": Value(
            {"type": "string", "minLength": 1},
            "another policy file judging this token's registrations (relative to this one)",
        ),
    },
    required=("name", "sha256"),
    nullable=False,
)

TOKENS = Section(
    "Initial access tokens (RFC 7591 §3).",
    {
        "required": Value({"type": "boolean"}, "registrations without a token are refused", False),
        "tokens": Entries("the tokens, by hash", TOKEN, MAX_TOKENS),
    },
)

APPROVAL = Section(
    "Administrator approval of new clients (docs/lifecycle.md).",
    {
        "required": Value({"type": "boolean"}, "new clients wait for approval", False),
        "auto_approve": Value(string_list(choice(AutoApprove)), "who skips the wait", []),
        "pending_ttl": Value(DURATION, "unapproved clients are deleted after this", "1h"),
    },
)

CLEANUP = Section(
    "Deleting unused clients (docs/lifecycle.md).",
    {
        "idle_after": Value(DURATION, "delete clients nobody used for this long"),
        "never_used_after": Value(
            DURATION, "delete clients never used within this long of their registration"
        ),
    },
)

QUOTAS = Section(
    "Live clients per vendor and per tenant (docs/lifecycle.md).",
    {
        "max_clients_per_vendor": Value(
            {"type": "integer", "minimum": 1, "maximum": 10**9}, "live clients per vendor"
        ),
        "max_clients": Value(
            {"type": "integer", "minimum": 1, "maximum": 10**9}, "live clients in all"
        ),
        "on_full": Value(
            choice(OnQuotaFull),
            "reject, or evict the least recently used idle client",
            OnQuotaFull.REJECT.value,
        ),
        "evict_idle_after": Value(DURATION, "how idle an evicted client must be", "15m"),
    },
)

CIMD = Section(
    "Client ID Metadata Documents (docs/cimd.md).",
    {
        "managed_list": Value(
            MANAGED_SELECTION,
            "the managed entries whose cimd_client_ids are accepted: all, none, or ids",
            "all",
        ),
        "allow": Value(string_list(PATTERN), "patterns for other client_id URLs", []),
        "report_only": report_only_value(),
    },
)

#: Controls that belong to the policy that received a request, not to a token's policy.
NOT_IN_TOKEN_POLICIES = (
    "rate_limits",
    "on_storage_error",
    "initial_access_tokens",
    "approval",
    "cleanup",
    "quotas",
)

IDENTITY = Section(
    "Identity (impersonation) protection: only whether it is report-only.",
    {"report_only": report_only_value()},
)

TOP = Section(
    "A dcr-gateway policy (docs/policy.md).",
    {
        "version": Value({"const": 1}, "the policy format's version (1, the only one)"),
        "mode": Value(
            choice(Mode),
            "open: any application; allowlist: approved applications; disabled: none",
            Mode.ALLOWLIST.value,
        ),
        "enforcement": Value(
            choice(Enforcement),
            "enforce, or report-only: every refusal audited as would_deny and forwarded",
            Enforcement.ENFORCE.value,
        ),
        "redirect_uris": REDIRECT,
        "client": CLIENT,
        "identity": IDENTITY,
        "cimd": CIMD,
        "rate_limits": Entries("rate limits on registration requests", RATE_RULE, MAX_RULES),
        "on_storage_error": Value(
            choice(OnStorageError),
            "when storage (Redis) cannot be reached: fail_closed (503) or fail_open",
            OnStorageError.FAIL_CLOSED.value,
        ),
        "initial_access_tokens": TOKENS,
        "approval": APPROVAL,
        "cleanup": CLEANUP,
        "quotas": QUOTAS,
    },
    required=("version",),
    nullable=False,
)
