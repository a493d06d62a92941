"""Report-only: which refusals a policy only reports, and what decides the request then.

``enforcement: report-only`` (the whole policy) and ``report_only: true`` (one section:
``redirect_uris``, ``client``, ``identity``, ``cimd``) let a stricter policy run against
real traffic before it refuses anything: a request one of those groups would refuse is
audited as ``decision: would_deny`` with the rule, and forwarded.

The engine knows nothing of this.  A handler judges with the policy as written (what
enforcing it would do) and, when the refusal belongs to a report-only group, judges again
with :attr:`~gateway.policy.model.Policy.enforced_view`: the same policy with those groups'
refusals switched off.  The second decision is what is acted on.  Judging again, rather
than forwarding the first decision's metadata, matters because the engine stops at the
first refusal: a request whose redirect URI is not allowed (reported) and whose
``jwks_uri`` points at a private address (enforced) is refused, though the engine never
reached the ``jwks_uri`` the first time.

Only rules the policy file configures can be reported.  Hygiene (redirect URI parsing,
body types, software statements, fetched URLs' SSRF rules, RFC 7591 consistency, the cost
bounds) is enforced in every case, and so are the controls around the decision: rate
limits, quotas and initial access tokens.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from gateway import rules
from gateway.policy.decision import Decision
from gateway.policy.model import CimdPolicy, Mode, Policy, RuleGroup
from gateway.policy.patterns import LoopbackMode, PatternSet


def _uri_rules(*suffixes: str) -> dict[str, RuleGroup]:
    return {
        f"{prefix}.{suffix}": RuleGroup.REDIRECT_URIS
        for prefix in ("redirect_uri", "post_logout_redirect_uri")
        for suffix in suffixes
    }


#: The reportable rules, by the group (policy section) that configures them.
GROUP_OF: dict[str, RuleGroup] = {
    rules.MODE_DISABLED.id: RuleGroup.MODE,
    **_uri_rules("loopback_denied", "blocked", "not_allowed"),
    rules.GRANT_TYPE_NOT_ALLOWED.id: RuleGroup.CLIENT,
    rules.RESPONSE_TYPE_NOT_ALLOWED.id: RuleGroup.CLIENT,
    rules.AUTH_METHOD_NOT_ALLOWED.id: RuleGroup.CLIENT,
    rules.SCOPE_NOT_ALLOWED.id: RuleGroup.CLIENT,
    rules.CLIENT_NAME_DENIED.id: RuleGroup.CLIENT,
    "metadata_url.host_not_allowed": RuleGroup.CLIENT,
    rules.CLIENT_NAME_IMPERSONATION.id: RuleGroup.IDENTITY,
    rules.SOFTWARE_ID_IMPERSONATION.id: RuleGroup.IDENTITY,
    rules.IDENTITY_FOREIGN_HOST.id: RuleGroup.IDENTITY,
    rules.CIMD_NOT_ALLOWED.id: RuleGroup.CIMD,
    rules.CIMD_IDENTITY.id: RuleGroup.IDENTITY,
}

#: The groups a section's ``report_only: true`` can name (``mode`` has no section).
SECTION_GROUPS = (
    RuleGroup.REDIRECT_URIS,
    RuleGroup.CLIENT,
    RuleGroup.IDENTITY,
    RuleGroup.CIMD,
)


def group_of(rule_id: str) -> RuleGroup | None:
    """The group whose ``report_only`` can report ``rule_id``; ``None``: always enforced."""
    return GROUP_OF.get(rule_id)


def reported_group(policy: Policy, decision: Decision) -> RuleGroup | None:
    """The report-only group of ``policy`` that ``decision``'s refusal belongs to, if any."""
    if decision.allowed:
        return None
    group = group_of(decision.rule)
    return group if group is not None and group in policy.report_only else None


def enforced_view(policy: Policy, groups: frozenset[RuleGroup]) -> Policy:
    """``policy`` with the refusals of ``groups`` switched off and everything else as it is
    (defaults, hygiene, the other groups, the controls): what acts on a request that one
    of ``groups`` would refuse."""
    view = policy
    if RuleGroup.MODE in groups and view.mode is Mode.DISABLED:
        view = dataclasses.replace(view, mode=Mode.ALLOWLIST)
    if RuleGroup.REDIRECT_URIS in groups:
        rp = view.redirect_uris
        view = dataclasses.replace(
            view,
            redirect_uris=dataclasses.replace(
                rp,
                blocked=PatternSet((), rp.loopback),
                loopback=LoopbackMode.ANY_PORT if rp.loopback is LoopbackMode.DENY else rp.loopback,
                any_allowed=True,
            ),
        )
    if RuleGroup.CLIENT in groups:
        client = view.client
        view = dataclasses.replace(
            view,
            client=dataclasses.replace(
                client,
                token_endpoint_auth_methods=None,
                grant_types=None,
                response_types=None,
                scopes=dataclasses.replace(client.scopes, allowed=None),
                client_name_deny=(),
                fetched_url_hosts=None,
            ),
        )
    if RuleGroup.IDENTITY in groups:
        view = dataclasses.replace(view, protect_identities=False)
    if RuleGroup.CIMD in groups:
        view = dataclasses.replace(
            view, cimd=CimdPolicy(view.cimd.managed, view.cimd.allow, any_allowed=True)
        )
    return dataclasses.replace(view, report_only=frozenset(), enforced_view=None)


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a handler acts on (``acting``), and the refusal it only reports (``reported``,
    with its ``group``), when report-only turned one into ``would_deny``."""

    acting: Decision
    reported: Decision | None = None
    group: RuleGroup | None = None

    @property
    def outcome(self) -> str:
        """``allowed``, ``denied`` or ``would_deny``: the policy's verdict as audited."""
        if self.reported is not None and self.acting.allowed:
            return "would_deny"
        return "allowed" if self.acting.allowed else "denied"

    @property
    def rule(self) -> str:
        """The rule the verdict names: the reported one for ``would_deny``."""
        if self.reported is not None and self.acting.allowed:
            return self.reported.rule
        return self.acting.rule


def resolve(
    policy: Policy, decision: Decision, rejudge: Callable[[Policy], Decision]
) -> Resolution:
    """The decision to act on, given ``decision`` (the policy's, as written).

    ``rejudge`` judges the same request with another policy (the caller knows whether it
    is a registration body or a metadata document).  A refusal of a report-only group is
    judged again by the enforced view: if that still refuses, an enforced rule refuses
    the request as it would be forwarded, and that refusal is acted on."""
    group = reported_group(policy, decision)
    if group is None or policy.enforced_view is None:
        return Resolution(decision)
    acting = rejudge(policy.enforced_view)
    if not acting.allowed:
        return Resolution(acting)
    return Resolution(acting, decision, group)
