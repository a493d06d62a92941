"""The audit record: what one guarded exchange became, written as exactly one event.

Modelled on OPA's decision log: the input that was judged (without secrets), the result,
the rule, the policy revision, and what the upstream made of it.  A handler creates one
:class:`AuditRecord` when the request arrives and fills it through a few methods, one per
stage (:meth:`note_request`, :meth:`note_decision`, :meth:`note_error`,
:meth:`note_answer`), so no stage can forget a field another one set.

Field names are a stable interface for SREs: add fields, never rename them.  No field
carries a client secret, a registration access token, an initial access token or an
``Authorization`` header: events are built from an explicit list of safe fields, never by
dumping the request or the upstream's answer.  A field that is ever shortened says so in
``truncated`` (field name -> its original length), never silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway import fastjson
from gateway.oauth.rfc7591 import (
    BOOLEAN_FIELDS,
    INTEGER_FIELDS,
    OBJECT_FIELDS,
    STRING_ARRAY_FIELDS,
    STRING_FIELDS,
    base_field,
)

if TYPE_CHECKING:
    from gateway.errors import OAuthError
    from gateway.policy.decision import Decision
    from gateway.policy.model import Policy
    from gateway.policy.report_only import Resolution

#: The ``event`` value of a registration decision.
REGISTRATION_EVENT = "registration"
#: The ``event`` values of RFC 7592 management calls, by method.
MANAGEMENT_EVENTS = {"GET": "client.read", "PUT": "client.updated", "DELETE": "client.deleted"}
#: A management call with another method (refused).
MANAGEMENT_EVENT = "client.management"

#: Longest string kept from a client-supplied field; real values are far shorter.
MAX_TEXT = 2000
#: Most items kept from a client-supplied list (the policy refuses more than
#: ``max_redirect_uris`` redirect URIs, so real requests are never cut).
MAX_ITEMS = 100
#: Largest ``metadata`` kept for replay (its JSON); a larger request is not kept at all,
#: rather than cut into something the policy would judge differently.
MAX_REPLAY_BYTES = 16384
#: What stands in for a value the event does not keep (an unknown field, a secret).
OMITTED = "<omitted>"
#: Values that are kept only as present: a software statement (its claims) and ``jwks``.
_PRESENT_ONLY = frozenset({"software_statement"})
#: ``note_answer(parsed=...)`` left out: the body is parsed there.
_UNPARSED: Any = object()
#: Fields :func:`replayable` keeps as they were sent.
_REPLAYED_AS_SENT = STRING_ARRAY_FIELDS | STRING_FIELDS | INTEGER_FIELDS | BOOLEAN_FIELDS
#: Fields that only appear when set.
_OPTIONAL = ("truncated", "metadata", "policy_decision", "report_only")


@dataclass(slots=True)
class AuditRecord:
    """What one exchange became; filled in as the request goes on."""

    event: str
    request_id: str
    client_ip: str | None
    user_agent: str | None
    method: str
    path: str
    client_request_id: str | None = None
    #: The tenant (Keycloak realm) whose policy decided; ``None`` in the generic profile.
    tenant: str | None = None
    decision: str = "error"  # allowed | denied | error
    rule: str | None = None
    error: str | None = None
    error_description: str | None = None
    status: int | None = None
    matched: list[str] = field(default_factory=list)
    vendor: str | None = None
    dropped_redirect_uris: list[str] = field(default_factory=list)
    client_name: str | None = None
    software_id: str | None = None
    redirect_uris: list[str] | None = None
    token_endpoint_auth_method: str | None = None
    grant_types: list[str] | None = None
    scope: str | None = None
    policy: str | None = None
    policy_revision: str | None = None
    #: The name of the initial access token the request carried (never the token).
    initial_access_token_name: str | None = None
    #: ``fail_open`` when storage failed and the policy let the request through unlimited.
    storage_error: str | None = None
    upstream_status: int | None = None
    upstream_error: str | None = None
    client_id: str | None = None
    client_disconnected: bool = False
    latency_ms: float | None = None
    truncated: dict[str, int] = field(default_factory=dict)
    #: The submitted client metadata as the policy judges it, without secrets
    #: (:func:`replayable`), so ``dcr-gateway diff`` can judge it again.
    metadata: dict[str, Any] | None = None
    #: The policy's verdict, whatever happened after it (a rate limit, the upstream):
    #: ``{"decision": allowed | denied | would_deny, "rule": ...}``.
    policy_decision: dict[str, str] | None = None
    #: Under report-only, the refusal that was only reported: its group, error and
    #: description, and the rule that let the request through.
    report_only: dict[str, Any] | None = None
    #: Fields of one kind of event only (``changes`` of ``client.updated``).
    extra: dict[str, Any] = field(default_factory=dict)

    def note_policy(self, policy: Policy) -> None:
        self.policy = policy.source
        self.policy_revision = policy.revision

    def note_request(self, metadata: Mapping[str, Any]) -> None:
        """Copy the safe, descriptive fields of the submitted metadata."""
        self.client_name = self._text("client_name", metadata.get("client_name"))
        self.software_id = self._text("software_id", metadata.get("software_id"))
        self.redirect_uris = self._texts("redirect_uris", metadata.get("redirect_uris"))
        self.token_endpoint_auth_method = self._text(
            "token_endpoint_auth_method", metadata.get("token_endpoint_auth_method")
        )
        self.grant_types = self._texts("grant_types", metadata.get("grant_types"))
        self.scope = self._text("scope", metadata.get("scope"))

    def note_submitted(self, metadata: Mapping[str, Any]) -> None:
        """Keep the submitted metadata for replay (:func:`replayable`: no secrets, and
        nothing at all when it is larger than :data:`MAX_REPLAY_BYTES`)."""
        kept = replayable(metadata)
        size = len(fastjson.dumps(kept, default=str))
        if size > MAX_REPLAY_BYTES:
            self.truncated["metadata"] = size
            self.metadata = None
        else:
            self.metadata = kept

    def note_decision(self, decision: Decision) -> None:
        """The verdict's rule and what it matched; an allowed decision is ``allowed``."""
        self.rule = decision.rule
        self.matched = list(decision.matched)
        self.vendor = decision.vendor
        self.dropped_redirect_uris = list(decision.dropped_redirect_uris)
        self.policy_decision = {
            "decision": "allowed" if decision.allowed else "denied",
            "rule": decision.rule,
        }
        self.report_only = None
        if decision.allowed:
            self.decision = "allowed"

    def note_resolution(self, resolution: Resolution) -> None:
        """The decision acted on; under report-only, the refusal that was only reported
        (the event then says ``decision: would_deny`` and names its rule)."""
        self.note_decision(resolution.acting)
        reported = resolution.reported
        if reported is None or reported.error is None or resolution.group is None:
            return
        self.rule = reported.rule
        self.matched = list(reported.matched)
        self.policy_decision = {"decision": "would_deny", "rule": reported.rule}
        self.report_only = {
            "group": resolution.group.value,
            "error": reported.error.error,
            "error_description": reported.error.description,
            "status": reported.error.status,
            "allowed_by": resolution.acting.rule,
        }

    def note_error(self, error: OAuthError) -> None:
        """A refusal (4xx, ``denied``) or a fault (5xx, ``error``) and what was answered."""
        self.decision = "denied" if error.status < 500 else "error"
        self.rule = error.rule
        self.error = error.error
        self.error_description = error.description
        self.status = error.status

    def note_answer(self, status: int, body: bytes, parsed: object = _UNPARSED) -> None:
        """The upstream's status and its ``client_id`` (or ``error`` code); nothing else is
        kept, because the same body carries the client secret and registration access token.
        ``parsed``: the body's JSON, when the caller has parsed it already (``None``: it is
        not JSON)."""
        self.upstream_status = status
        answer = parsed
        if answer is _UNPARSED:
            try:
                answer = fastjson.loads(body)
            except (ValueError, RecursionError):
                return
        if not isinstance(answer, dict):
            return
        self.client_id = self._text("client_id", answer.get("client_id"))
        self.upstream_error = self._text("upstream_error", answer.get("error"))

    def as_fields(self) -> dict[str, Any]:
        fields = {
            name: list(value) if isinstance(value, list) else value
            for name in self.__slots__
            if name not in ("event", "extra")
            for value in (getattr(self, name),)
        }
        for name in _OPTIONAL:
            if not fields[name]:
                del fields[name]
        if self.report_only is not None and self.decision == "allowed":
            fields["decision"] = "would_deny"  # forwarded, though the policy would refuse
        fields.update(self.extra)
        return fields

    def _text(self, name: str, value: object) -> str | None:
        if not isinstance(value, str):
            return None
        if len(value) > MAX_TEXT:
            self.truncated[name] = len(value)
            return value[:MAX_TEXT]
        return value

    def _texts(self, name: str, value: object) -> list[str] | None:
        if not isinstance(value, list):
            return None
        items = [v for v in value if isinstance(v, str)]
        if len(items) > MAX_ITEMS:
            self.truncated[name] = len(items)
            items = items[:MAX_ITEMS]
        return [self._text(f"{name}[{i}]", v) or "" for i, v in enumerate(items)]


def replayable(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata as the policy judges it, minus anything secret.

    Fields RFC 7591 and OpenID Connect define (:mod:`gateway.oauth.rfc7591`, with their
    language-tagged variants) are kept as sent; a software statement only as present
    (the engine refuses any); ``jwks`` as an object without its keys (the policy only asks
    whether it is there, and a private key must never reach a log); every other field
    (``client_secret``, a registration access token, extensions the policy does not
    judge) as :data:`OMITTED`, so the number of members is still right."""
    kept: dict[str, Any] = {}
    for key, value in metadata.items():
        name = base_field(key)
        if name in _PRESENT_ONLY:
            kept[key] = OMITTED
        elif name in OBJECT_FIELDS:
            kept[key] = {"keys": OMITTED} if isinstance(value, dict) else OMITTED
        elif name in _REPLAYED_AS_SENT:
            kept[key] = value
        else:
            kept[key] = OMITTED
    return kept
