"""The metrics module: what each call counts, a registry per application, bounded labels."""

from __future__ import annotations

from gateway.audit.events import AuditRecord
from gateway.audit.sink import AuditLog
from gateway.metrics import Metrics
from gateway.policy.loader import policy_from_mapping
from gateway.policy.policies import Policies
from tests.support.metrics import nonzero, parse, value

OPEN = {"version": 1, "mode": "open", "client": {"scopes": {"allowed": "any"}}}
LIMITED = {
    **OPEN,
    "rate_limits": [{"name": "burst", "key": "client_ip", "limit": "1/minute"}],
}


def record(event: str = "registration", **fields: object) -> AuditRecord:
    extra = fields.pop("extra", {})
    rec = AuditRecord(
        event=event,
        request_id="r",
        client_ip="192.0.2.1",
        user_agent=None,
        method="POST",
        path="/reg",
    )
    for name, value_ in fields.items():
        setattr(rec, name, value_)
    rec.extra.update(extra)  # type: ignore[arg-type]
    return rec


def scraped(metrics: Metrics) -> dict:
    return parse(metrics.render().decode("utf-8"))


def test_each_application_has_a_registry_of_its_own() -> None:
    one, two = Metrics(), Metrics()
    one.passthrough("GET", 200)
    assert (
        value(
            scraped(one), "dcr_gateway_passthrough_requests_total", method="GET", status_class="2xx"
        )
        == 1.0
    )
    assert (
        value(
            scraped(two), "dcr_gateway_passthrough_requests_total", method="GET", status_class="2xx"
        )
        == 0.0
    )


def test_registrations_are_counted_by_decision_rule_vendor_tenant_and_source() -> None:
    metrics = Metrics(tenants=["customers"], policies=Policies(policy_from_mapping(OPEN)))
    metrics.observe(record(decision="allowed", rule="allow.managed", vendor="claude"))
    metrics.observe(record(decision="allowed", rule="allow.managed", vendor="claude"))
    metrics.observe(
        record(
            decision="denied", rule="redirect_uri.not_allowed", vendor="made-up", tenant="Customers"
        )
    )
    metrics.observe(
        record(decision="allowed", rule="allow.open", tenant="customers", extra={"source": "cimd"})
    )
    assert nonzero(scraped(metrics), "dcr_gateway_registrations_total") == {
        (
            ("decision", "allowed"),
            ("rule", "allow.managed"),
            ("source", "dcr"),
            ("tenant", "default"),
            ("vendor", "claude"),
        ): 2.0,
        (
            ("decision", "denied"),
            ("rule", "redirect_uri.not_allowed"),
            ("source", "dcr"),
            ("tenant", "other"),
            ("vendor", "unknown"),
        ): 1.0,
        (
            ("decision", "allowed"),
            ("rule", "allow.open"),
            ("source", "cimd"),
            ("tenant", "customers"),
            ("vendor", "unknown"),
        ): 1.0,
    }


def test_management_cimd_blocked_and_admin_events_have_their_own_counters() -> None:
    metrics = Metrics()
    metrics.observe(record("client.updated", decision="denied", rule="redirect_uri.not_allowed"))
    metrics.observe(record("client.management", decision="denied", rule="request.method"))
    metrics.observe(
        record(
            "cimd.decision",
            decision="denied",
            rule="cimd.fetch.timeout",
            extra={"cache": "miss", "client_id_url": "https://x.example/c"},
        )
    )
    metrics.observe(
        record(
            "client.blocked",
            decision="denied",
            rule="approval.pending",
            extra={"endpoint": "token"},
        )
    )
    metrics.observe(record("admin.initial_access_token", decision="allowed", rule="allow.admin"))
    out = scraped(metrics)
    assert nonzero(out, "dcr_gateway_management_total") == {
        (
            ("decision", "denied"),
            ("operation", "update"),
            ("rule", "redirect_uri.not_allowed"),
            ("tenant", "default"),
            ("vendor", "unknown"),
        ): 1.0,
        (
            ("decision", "denied"),
            ("operation", "other"),
            ("rule", "request.method"),
            ("tenant", "default"),
            ("vendor", "unknown"),
        ): 1.0,
    }
    assert nonzero(out, "dcr_gateway_cimd_decisions_total") == {
        (
            ("cache", "miss"),
            ("decision", "denied"),
            ("rule", "cimd.fetch.timeout"),
            ("tenant", "default"),
            ("vendor", "unknown"),
        ): 1.0,
    }
    assert nonzero(out, "dcr_gateway_blocked_total") == {
        (("endpoint", "token"), ("rule", "approval.pending"), ("tenant", "default")): 1.0,
    }
    assert nonzero(out, "dcr_gateway_admin_calls_total") == {
        (("call", "admin.initial_access_token"), ("decision", "allowed")): 1.0,
    }
    assert nonzero(out, "dcr_gateway_registrations_total") == {}


def test_rate_limit_refusals_name_the_configured_limit() -> None:
    metrics = Metrics(policies=Policies(policy_from_mapping(LIMITED)))
    metrics.observe(record(decision="denied", rule="rate_limit.burst"))
    metrics.observe(record(decision="denied", rule="rate_limit.forged"))
    assert nonzero(scraped(metrics), "dcr_gateway_rate_limited_total") == {
        (("limit", "burst"), ("tenant", "default")): 1.0,
    }
    assert (
        value(
            scraped(metrics),
            "dcr_gateway_registrations_total",
            decision="denied",
            rule="other",
            vendor="unknown",
            tenant="default",
            source="dcr",
        )
        == 1.0
    )


def test_the_audit_sink_feeds_its_observers_once_per_record(tmp_path) -> None:
    metrics = Metrics()
    audit = AuditLog(str(tmp_path / "audit.jsonl"))
    audit.observers.append(metrics.observe)
    audit.write(record(decision="allowed", rule="allow.open"))
    audit.emit("lifecycle.run", {"decision": "ran"})  # not an exchange: not counted
    audit.close()
    assert sum(nonzero(scraped(metrics), "dcr_gateway_registrations_total").values()) == 1.0


def test_a_failing_observer_does_not_break_the_audit_trail(tmp_path) -> None:
    audit = AuditLog(str(tmp_path / "audit.jsonl"))

    def broken(_: AuditRecord) -> None:
        raise RuntimeError("boom")

    audit.observers.append(broken)
    audit.write(record(decision="allowed", rule="allow.open"))
    audit.close()
    assert (tmp_path / "audit.jsonl").read_text().count('"registration"') == 1


def test_pass_through_answers_by_method_and_status_class() -> None:
    metrics = Metrics()
    for method, status in (("GET", 200), ("GET", 304), ("BREW", 418), ("POST", 502), ("GET", 700)):
        metrics.passthrough(method, status)
    assert nonzero(scraped(metrics), "dcr_gateway_passthrough_requests_total") == {
        (("method", "GET"), ("status_class", "2xx")): 1.0,
        (("method", "GET"), ("status_class", "3xx")): 1.0,
        (("method", "other"), ("status_class", "4xx")): 1.0,
        (("method", "POST"), ("status_class", "5xx")): 1.0,
        (("method", "GET"), ("status_class", "5xx")): 1.0,
    }


def test_latencies_upstream_errors_fetches_storage_and_registry() -> None:
    metrics = Metrics()
    metrics.decided("registration", 0.00003)
    metrics.upstream_answered(0.02)
    metrics.upstream_failed("timeout", "guarded")
    metrics.cimd_fetched("ok", 0.1)
    metrics.cimd_fetched("cimd.fetch.private_address", 0.001)
    metrics.cimd_fetched("cimd.fetch.rate_limited", None)
    metrics.storage_failed()
    metrics.registry_counts({"active": 3, "pending": 1}, when=1000.0)
    out = scraped(metrics)
    assert value(out, "dcr_gateway_decision_seconds_bucket", kind="registration", le="5e-05") == 1
    assert value(out, "dcr_gateway_upstream_seconds_count") == 1.0
    assert nonzero(out, "dcr_gateway_upstream_errors_total") == {
        (("kind", "timeout"), ("pool", "guarded")): 1.0
    }
    assert nonzero(out, "dcr_gateway_cimd_fetches_total") == {
        (("outcome", "ok"),): 1.0,
        (("outcome", "private_address"),): 1.0,
        (("outcome", "rate_limited"),): 1.0,
    }
    assert value(out, "dcr_gateway_cimd_fetch_seconds_count") == 2.0
    assert value(out, "dcr_gateway_storage_errors_total") == 1.0
    assert nonzero(out, "dcr_gateway_registry_clients") == {
        (("status", "active"),): 3.0,
        (("status", "pending"),): 1.0,
    }
    assert value(out, "dcr_gateway_registry_clients", status="deleted") == 0.0
    assert value(out, "dcr_gateway_registry_clients_refreshed_timestamp_seconds") == 1000.0


def test_policy_reloads_count_and_replace_the_revision() -> None:
    first = Policies(policy_from_mapping(OPEN))
    metrics = Metrics(policies=first)
    second = Policies(policy_from_mapping(LIMITED))
    metrics.policy_reloaded(False)
    metrics.policy_reloaded(True, second)
    out = scraped(metrics)
    assert value(out, "dcr_gateway_policy_reloads_total", result="ok") == 1.0
    assert value(out, "dcr_gateway_policy_reloads_total", result="error") == 1.0
    assert nonzero(out, "dcr_gateway_policy_revision_info") == {
        (("revision", second.default.revision), ("tenant", "default")): 1.0
    }
    assert value(out, "dcr_gateway_policy_loaded_timestamp_seconds") > 0
    # The reloaded policy's limits are now label values.
    metrics.observe(record(decision="denied", rule="rate_limit.burst"))
    assert nonzero(scraped(metrics), "dcr_gateway_rate_limited_total") == {
        (("limit", "burst"), ("tenant", "default")): 1.0
    }
