"""The policy as a typed, immutable value, built once by :mod:`gateway.policy.loader`.

Everything expensive (pattern compilation, indexes, glob regexes) happens at load, so a
decision only looks things up.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from gateway.policy.patterns import LoopbackMode, PatternSet


class Mode(StrEnum):
    """Glean's three settings for dynamic registration."""

    OPEN = "open"  # "Allow any application"
    ALLOWLIST = "allowlist"  # "Allow approved applications"
    DISABLED = "disabled"  # "Do not allow dynamic client registrations"


class OnMismatch(StrEnum):
    """What happens to a request where some redirect URIs are refused (RFC 7591 §3.2.1
    lets the server replace metadata values it does not accept)."""

    REJECT = "reject"
    DROP = "drop"


class OnExcess(StrEnum):
    REJECT = "reject"
    TRIM = "trim"


@dataclass(frozen=True, slots=True)
class ManagedClient:
    """One entry of the managed list: a known MCP client and how it registers."""

    id: str
    name: str
    vendor: str
    client_names: tuple[str, ...]
    redirect_uris: tuple[str, ...]
    cimd_client_ids: tuple[str, ...]
    software_ids: tuple[str, ...]
    source: str
    verified: str
    #: DNS names the client owns (each with its subdomains): its other URLs (logo, client
    #: page, keys, logout) may use them, and no request that is another client may.
    hosts: tuple[str, ...] = ()
    #: Hosts the client uses without owning them (``github.com``): allowed for it, not
    #: refused for others.
    shared_hosts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NameGlob:
    """A case-insensitive glob on the whole client name."""

    source: str
    #: The glob compiled for each identity key order (see
    #: :func:`gateway.unicode.confusables.identity_keys`).
    regexes: tuple[re.Pattern[str], ...]


@dataclass(frozen=True, slots=True)
class RedirectPolicy:
    managed_ids: tuple[str, ...]
    #: Selected managed entries (label ``managed:<id>``) and the custom list (``custom``).
    allowed: PatternSet
    #: Refused in every mode, checked first (label ``block``).
    blocked: PatternSet
    loopback: LoopbackMode
    on_mismatch: OnMismatch
    #: More redirect URIs (or post-logout redirect URIs) than this are refused outright.
    max_redirect_uris: int = 20
    #: Accept a URI that passes hygiene whatever the allow lists say (``mode`` unchanged);
    #: only :func:`gateway.policy.report_only.enforced_view` sets it.
    any_allowed: bool = False


@dataclass(frozen=True, slots=True)
class ScopePolicy:
    #: ``None`` means any scope may be requested.
    allowed: frozenset[str] | None
    default: tuple[str, ...]
    on_excess: OnExcess


@dataclass(frozen=True, slots=True)
class ClientPolicy:
    #: ``None`` (here and for grant and response types): any value is accepted; only
    #: :func:`gateway.policy.report_only.enforced_view` makes such a policy.
    token_endpoint_auth_methods: frozenset[str] | None
    default_token_endpoint_auth_method: str
    grant_types: frozenset[str] | None
    response_types: frozenset[str] | None
    scopes: ScopePolicy
    client_name_deny: tuple[NameGlob, ...]
    #: Claim keys (see :func:`gateway.policy.names.claim_keys`) of managed identities this
    #: policy does not protect: a vendor or client name that is an ordinary word here.
    unprotected_identities: frozenset[str] = frozenset()
    #: When set, the only hosts (and their subdomains) fetched URLs (``jwks_uri``,
    #: ``sector_identifier_uri``, ``request_uris``, ``backchannel_logout_uri``) may use.
    fetched_url_hosts: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class ManagedIndex:
    """The whole managed list, compiled for one loopback mode.

    Impersonation and vendor attribution use every entry, whether or not the policy
    selected it: a request calling itself ``claudeai`` is suspect in any mode.
    """

    clients: tuple[ManagedClient, ...]
    #: All entries' patterns, labels ``managed:<id>``, for vendor attribution.
    patterns: PatternSet
    #: Each entry's own patterns, for the impersonation check.
    per_client: Mapping[str, PatternSet]
    #: Protected identity (claim key of a name, a client name or a vendor, see
    #: :func:`gateway.policy.names.claim_keys`) -> the entries that may use it.
    protected: Mapping[str, tuple[ManagedClient, ...]]
    #: Every prefix of a key in ``protected`` (see :func:`gateway.policy.names.prefixes`).
    claim_prefixes: frozenset[str]
    #: software_id (see :func:`gateway.policy.names.software_id_key`) -> entries.
    by_software_id: Mapping[str, tuple[ManagedClient, ...]]


class RateKey(StrEnum):
    """What a rate limit counts per (the bucket a request falls in)."""

    CLIENT_IP = "client_ip"  # the caller's address (an IPv6 address by its /64)
    SOFTWARE_ID = "software_id"
    VENDOR = "vendor"  # the managed entry, else the identity key of client_name
    INITIAL_ACCESS_TOKEN = "initial_access_token"  # noqa: S105 (the token's name, a key)
    TENANT = "tenant"
    GLOBAL = "global"


class RateCount(StrEnum):
    ATTEMPTS = "attempts"  # every registration request
    REGISTRATIONS = "registrations"  # only those the upstream created


class OnStorageError(StrEnum):
    FAIL_CLOSED = "fail_closed"  # 503
    FAIL_OPEN = "fail_open"  # allowed, audited


@dataclass(frozen=True, slots=True)
class RateWindow:
    """At most ``amount`` per ``seconds``: one item of a rate string (``20/hour``)."""

    amount: int
    seconds: int


@dataclass(frozen=True, slots=True)
class RateRule:
    name: str
    key: RateKey
    windows: tuple[RateWindow, ...]
    count: RateCount
    #: The rate string as written (``20/hour;100/day``), for ``check`` and docs.
    limit: str

    @property
    def rule_id(self) -> str:
        return f"rate_limit.{self.name}"


@dataclass(frozen=True, slots=True)
class TokenEntry:
    """An initial access token (RFC 7591 §3) the policy accepts, known by its hash only."""

    name: str
    #: SHA-256 of the token (32 bytes).
    digest: bytes
    #: Expiry, seconds since the epoch; ``None``: never.
    expires: float | None = None
    max_uses: int | None = None
    #: Registrations with this token are judged by this policy instead.
    policy: Policy | None = None


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    #: A registration without a valid token is refused (401).
    required: bool = False
    tokens: tuple[TokenEntry, ...] = ()


class AutoApprove(StrEnum):
    MANAGED = "managed"  # the registration matched a managed entry
    TOKEN = "token"  # noqa: S105 (the registration carried a valid initial access token)


@dataclass(frozen=True, slots=True)
class ApprovalPolicy:
    """``approval``: new dynamic clients start as pending until an administrator approves
    them, unless an ``auto_approve`` condition holds."""

    required: bool = False
    auto_approve: tuple[AutoApprove, ...] = ()
    #: Unapproved clients are deleted after this many seconds (Qlik's default: one hour).
    pending_ttl: float = 3600.0


@dataclass(frozen=True, slots=True)
class CleanupPolicy:
    """``cleanup``: clients unused for so long are deleted upstream; ``None``: never."""

    idle_after: float | None = None
    never_used_after: float | None = None


class OnQuotaFull(StrEnum):
    REJECT = "reject"
    EVICT_IDLE = "evict_idle"


@dataclass(frozen=True, slots=True)
class QuotaPolicy:
    """``quotas``: live (pending or active) clients per vendor and per tenant."""

    max_clients_per_vendor: int | None = None
    max_clients: int | None = None
    on_full: OnQuotaFull = OnQuotaFull.REJECT
    #: ``evict_idle`` never evicts a client used (or registered) more recently than this.
    evict_idle_after: float = 900.0

    @property
    def enabled(self) -> bool:
        return self.max_clients_per_vendor is not None or self.max_clients is not None


@dataclass(frozen=True, slots=True)
class CimdPolicy:
    """``cimd``: which Client ID Metadata Document URLs ``allowlist`` mode accepts: the
    selected managed entries' ``cimd_client_ids`` and the ``allow`` patterns (written in the
    redirect-URI pattern language)."""

    #: Exact client_id URL -> the managed entry it belongs to.
    managed: Mapping[str, str] = field(default_factory=dict)
    allow: PatternSet = field(default_factory=lambda: PatternSet(()))
    #: Accept any client_id URL in ``allowlist`` mode; only
    #: :func:`gateway.policy.report_only.enforced_view` sets it.
    any_allowed: bool = False


class Enforcement(StrEnum):
    """``enforcement``: whether the policy's refusals refuse (``enforce``) or are only
    audited as ``decision: would_deny`` while the request is forwarded (``report-only``)."""

    ENFORCE = "enforce"
    REPORT_ONLY = "report-only"


class RuleGroup(StrEnum):
    """The parts of a policy that ``report_only: true`` can switch to reporting, each a
    section of the policy file (``mode`` only with ``enforcement: report-only``)."""

    MODE = "mode"
    REDIRECT_URIS = "redirect_uris"
    CLIENT = "client"
    IDENTITY = "identity"
    CIMD = "cimd"


@dataclass(frozen=True, slots=True)
class Policy:
    version: int
    mode: Mode
    redirect_uris: RedirectPolicy
    client: ClientPolicy
    managed: ManagedIndex
    #: File name (or ``<inline>``), for audit and reload.
    source: str
    #: SHA-256 (hex) of exactly the bytes parsed: the policy file, then the managed list.
    revision: str
    rate_limits: tuple[RateRule, ...] = ()
    on_storage_error: OnStorageError = OnStorageError.FAIL_CLOSED
    initial_access_tokens: TokenPolicy = TokenPolicy()
    approval: ApprovalPolicy = ApprovalPolicy()
    cleanup: CleanupPolicy = CleanupPolicy()
    quotas: QuotaPolicy = QuotaPolicy()
    cimd: CimdPolicy = CimdPolicy()
    enforcement: Enforcement = Enforcement.ENFORCE
    #: The groups whose refusals are reported, not enforced (every group under
    #: ``enforcement: report-only``).
    report_only: frozenset[RuleGroup] = frozenset()
    #: Claims of managed identities are judged (``identity.*``, ``*.impersonation``); off
    #: only in :func:`gateway.policy.report_only.enforced_view`.
    protect_identities: bool = True
    #: This policy with the ``report_only`` groups' refusals switched off: what decides a
    #: request those groups would refuse (``None`` when nothing is report-only).
    enforced_view: Policy | None = None
