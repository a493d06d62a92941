"""gateway.policy.policies: choosing a tenant's policy, and the deployment's revision."""

from __future__ import annotations

from gateway.policy.loader import policy_from_mapping
from gateway.policy.policies import Policies

OPEN = policy_from_mapping({"version": 1, "mode": "open"})
CLOSED = policy_from_mapping({"version": 1, "mode": "disabled"})


def test_one_policy_has_its_own_revision() -> None:
    """The common deployment: ``policy.loaded`` names the same revision as every
    decision's audit event."""
    assert Policies(OPEN).revision == OPEN.revision


def test_several_policies_have_one_revision_of_the_set() -> None:
    both = Policies(OPEN, {"customers": CLOSED})
    assert both.revision not in (OPEN.revision, CLOSED.revision)
    assert both.revision == Policies(OPEN, {"customers": CLOSED}).revision
    assert both.revision != Policies(OPEN, {"partners": CLOSED}).revision


def test_a_tenant_without_its_own_policy_gets_the_default() -> None:
    policies = Policies(OPEN, {"customers": CLOSED})
    assert policies.for_tenant("customers") is CLOSED
    assert policies.for_tenant("Customers") is OPEN  # realm names are case-sensitive
    assert policies.for_tenant(None) is OPEN
    assert (policies.scope("customers"), policies.scope("other")) == ("customers", "")
