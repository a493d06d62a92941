"""``judge()``: the one entry point to a decision, for the server, ``explain`` and
``test-policy`` alike.

It takes client metadata as any JSON value could make it (or the raw body), checks the
RFC 7591 types, and asks the engine; it never raises.  The engine's checks are total for
well-typed metadata, and a fault that would still escape (a bug) becomes a refusal with
rule ``internal.error``, never an exception in the request path: default deny.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway import rules
from gateway.errors import OAuthError
from gateway.oauth.body import check_types, parse_body
from gateway.policy.decision import Decision, RequestContext
from gateway.policy.engine import decide
from gateway.policy.model import Policy


def judge(
    policy: Policy,
    metadata: Mapping[str, Any],
    context: RequestContext | None = None,
    *,
    typed: bool = False,
) -> Decision:
    """The decision on already-parsed metadata; well-typed or not (``typed``: it comes
    from :func:`~gateway.oauth.body.parse_body`, which checked the types already)."""
    try:
        if not typed:
            check_types(metadata)
        return decide(policy, metadata, context)
    except OAuthError as error:
        return Decision.deny(error, dict(metadata))
    except Exception:  # a bug: refuse rather than raise (the property tests look for this)
        return Decision.deny(rules.internal_error(), dict(metadata))


def judge_body(policy: Policy, body: bytes, context: RequestContext | None = None) -> Decision:
    """The decision on a raw request body, as the gateway would read it."""
    try:
        metadata = parse_body(body)
    except OAuthError as error:
        return Decision.deny(error, {})
    return judge(policy, metadata, context)
