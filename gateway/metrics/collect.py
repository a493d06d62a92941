"""The gateway's Prometheus metrics, in a registry of each application's own.

Decisions are counted where their audit events are written: :class:`Metrics` observes every
:class:`~gateway.audit.events.AuditRecord` the audit sink writes
(:meth:`Metrics.observe`), so a registration, a management call, a CIMD decision or a
blocked client is counted exactly once, with the same decision and rule as its event.  What
has no audit event is counted where it happens: pass-through answers, upstream faults,
CIMD document fetches, storage errors, policy reloads, and the time the policy engine and
the upstream took.

Every metric lives in a :class:`prometheus_client.CollectorRegistry` of this object's own,
never the library's global one, so several applications in one process (tests, a process
serving several configurations) keep apart.  Label values are bounded
(:mod:`gateway.metrics.labels`).  On the pass-through path the cost is one dictionary
lookup and one integer addition (:class:`PassThroughCounts`); children of the labelled
metrics that a hot path uses are bound once, at start-up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.audit.events import MANAGEMENT_EVENT, MANAGEMENT_EVENTS, REGISTRATION_EVENT
from gateway.metrics.labels import METHODS, OTHER, STATUS_CLASSES, Labels

if TYPE_CHECKING:
    from gateway.audit.events import AuditRecord
    from gateway.policy.policies import Policies

PREFIX = "dcr_gateway_"
#: Policy evaluation: tens of microseconds usually, milliseconds for the worst bodies.
DECISION_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)
#: An upstream answer or a document fetch: milliseconds to the timeouts (seconds).
NETWORK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

DECISIONS = ("allowed", "denied", "error")
#: What a decision histogram times: the policy on a registration, an RFC 7592 update, a
#: Client ID Metadata Document.
DECISION_KINDS = ("registration", "update", "cimd")
#: Kinds of upstream faults (``dcr_gateway_upstream_errors_total{kind}``).
UPSTREAM_ERRORS = ("timeout", "connect", "too_large", "encoding")
POOLS = ("passthrough", "guarded")
_OPERATIONS = {"client.read": "read", "client.updated": "update", "client.deleted": "delete"}
_MANAGEMENT = frozenset((*MANAGEMENT_EVENTS.values(), MANAGEMENT_EVENT))
CIMD_EVENT = "cimd.decision"
BLOCKED_EVENT = "client.blocked"
_CACHE = frozenset(("hit", "fetch", "miss"))
_ENDPOINTS = frozenset(("authorization", "token"))
#: Registry statuses (``gateway.registry.entry.Status`` values).
STATUSES = ("pending", "active", "rejected", "deleted")


class Metrics:
    """Every metric of one application, and the few calls that feed them."""

    def __init__(self, *, tenants: Iterable[str] = (), policies: Policies | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._tenants = tuple(tenants)
        self.labels = Labels(tenants=self._tenants)
        r = self.registry
        self.registrations = Counter(
            PREFIX + "registrations_total",
            "Registration requests (RFC 7591), one per audit event, by decision and rule",
            ("decision", "rule", "vendor", "tenant", "source"),
            registry=r,
        )
        self.management = Counter(
            PREFIX + "management_total",
            "RFC 7592 client management calls, one per audit event",
            ("operation", "decision", "rule", "vendor", "tenant"),
            registry=r,
        )
        self.cimd_decisions = Counter(
            PREFIX + "cimd_decisions_total",
            "Requests naming a Client ID Metadata Document, one per audit event",
            ("decision", "rule", "vendor", "tenant", "cache"),
            registry=r,
        )
        self.blocked = Counter(
            PREFIX + "blocked_total",
            "Authorization and token requests refused for the client's registry status",
            ("endpoint", "rule", "tenant"),
            registry=r,
        )
        self.admin_calls = Counter(
            PREFIX + "admin_calls_total",
            "Admin API calls, one per audit event",
            ("call", "decision"),
            registry=r,
        )
        self.rate_limited = Counter(
            PREFIX + "rate_limited_total",
            "Registrations refused by a rate limit of the policy, by the limit's name",
            ("limit", "tenant"),
            registry=r,
        )
        self.cimd_fetches = Counter(
            PREFIX + "cimd_fetches_total",
            "Network fetches of Client ID Metadata Documents (cache hits excluded), by outcome",
            ("outcome",),
            registry=r,
        )
        self.cimd_fetch_seconds = Histogram(
            PREFIX + "cimd_fetch_seconds",
            "Time a network fetch of a metadata document took, failed ones included",
            buckets=NETWORK_BUCKETS,
            registry=r,
        )
        decision_seconds = Histogram(
            PREFIX + "decision_seconds",
            "Time the policy engine took to decide (no I/O)",
            ("kind",),
            buckets=DECISION_BUCKETS,
            registry=r,
        )
        self._decision_seconds = {k: decision_seconds.labels(k) for k in DECISION_KINDS}
        self.upstream_seconds = Histogram(
            PREFIX + "upstream_seconds",
            "Time to the upstream's response headers on guarded calls (registration, "
            "management, discovery, readiness, CIMD bridging, cleanup)",
            buckets=NETWORK_BUCKETS,
            registry=r,
        )
        upstream_errors = Counter(
            PREFIX + "upstream_errors_total",
            "Upstream calls that failed, by kind and connection pool",
            ("kind", "pool"),
            registry=r,
        )
        self._upstream_errors = {
            (k, p): upstream_errors.labels(k, p) for k in UPSTREAM_ERRORS for p in POOLS
        }
        self.storage_errors = Counter(
            PREFIX + "storage_errors_total",
            "Operations the storage (Redis) failed",
            registry=r,
        )
        self.policy_reloads = Counter(
            PREFIX + "policy_reloads_total",
            "Policy reloads, by result",
            ("result",),
            registry=r,
        )
        for result in ("ok", "error"):
            self.policy_reloads.labels(result)
        self.policy_loaded = Gauge(
            PREFIX + "policy_loaded_timestamp_seconds",
            "When the policies in force were loaded (Unix time)",
            registry=r,
        )
        self.policy_info = Gauge(
            PREFIX + "policy_revision_info",
            "The revision (SHA-256 of the bytes parsed) of each tenant's policy in force",
            ("tenant", "revision"),
            registry=r,
        )
        self._passthrough = PassThroughCounts()
        r.register(self._passthrough)
        #: ``passthrough(method, status)``: one relayed answer (the status the client got,
        #: the gateway's own 502/504 included).  Bound here: one call on the hot path.
        self.passthrough: Callable[[str, int], None] = self._passthrough.count
        self.registry_clients = Gauge(
            PREFIX + "registry_clients",
            "Clients in the registry, by status (refreshed at most once per registry.job_interval)",
            ("status",),
            registry=r,
        )
        for status in STATUSES:
            self.registry_clients.labels(status)
        #: When the registry sizes were last read (Unix time; 0: never).
        self.registry_read_at = 0.0
        #: When a scrape last tried to read the registry, and whether one is reading now.
        self.registry_tried_at = 0.0
        self.registry_reading = False
        self.registry_refreshed = Gauge(
            PREFIX + "registry_clients_refreshed_timestamp_seconds",
            "When dcr_gateway_registry_clients was last read from storage (Unix time)",
            registry=r,
        )
        if policies is not None:
            self.use_policies(policies)

    # -- configuration ---------------------------------------------------------------

    def use_policies(self, policies: Policies) -> None:
        """The policies in force: their vendors and rate-limit names become label values,
        their revisions ``dcr_gateway_policy_revision_info``."""
        vendors: set[str] = set()
        limits: set[str] = set()
        for policy in policies.all():
            vendors.update(client.id for client in policy.managed.clients)
            limits.update(rule.name for rule in policy.rate_limits)
        self.labels = Labels(tenants=self._tenants, vendors=vendors, rate_limits=limits)
        self.policy_info.clear()
        self.policy_info.labels(self.labels.tenant(None), policies.default.revision).set(1)
        for tenant, policy in policies.tenants.items():
            self.policy_info.labels(self.labels.tenant(tenant), policy.revision).set(1)
        self.policy_loaded.set(time.time())

    def policy_reloaded(self, ok: bool, policies: Policies | None = None) -> None:
        """A reload of the policy files ended: ``ok`` with the ``policies`` now in force,
        or not (the old ones stay in force)."""
        self.policy_reloads.labels("ok" if ok else "error").inc()
        if ok and policies is not None:
            self.use_policies(policies)

    # -- what happened ---------------------------------------------------------------

    def observe(self, record: AuditRecord) -> None:
        """Count one finished exchange, as its audit event says; called by the audit sink
        for every record it writes."""
        labels = self.labels
        event = record.event
        decision = record.decision if record.decision in DECISIONS else OTHER
        rule = labels.rule(record.rule)
        tenant = labels.tenant(record.tenant)
        if event == REGISTRATION_EVENT:
            source = "cimd" if record.extra.get("source") == "cimd" else "dcr"
            vendor = labels.vendor(record.vendor)
            self.registrations.labels(decision, rule, vendor, tenant, source).inc()
        elif event in _MANAGEMENT:
            operation = _OPERATIONS.get(event, OTHER)
            vendor = labels.vendor(record.vendor)
            self.management.labels(operation, decision, rule, vendor, tenant).inc()
        elif event == CIMD_EVENT:
            cache = record.extra.get("cache")
            cache_label = cache if isinstance(cache, str) and cache in _CACHE else "none"
            vendor = labels.vendor(record.vendor)
            self.cimd_decisions.labels(decision, rule, vendor, tenant, cache_label).inc()
        elif event == BLOCKED_EVENT:
            endpoint = record.extra.get("endpoint")
            where = endpoint if isinstance(endpoint, str) and endpoint in _ENDPOINTS else OTHER
            self.blocked.labels(where, rule, tenant).inc()
        elif event.startswith("admin."):
            self.admin_calls.labels(event, decision).inc()
        if rule.startswith("rate_limit."):
            self.rate_limited.labels(labels.rate_limit(rule), tenant).inc()

    def decided(self, kind: str, seconds: float) -> None:
        """The policy engine's time for one decision (``kind``: one of
        :data:`DECISION_KINDS`)."""
        self._decision_seconds[kind].observe(seconds)

    def upstream_answered(self, seconds: float) -> None:
        self.upstream_seconds.observe(seconds)

    def upstream_failed(self, kind: str, pool: str) -> None:
        """An upstream call failed: ``kind`` one of :data:`UPSTREAM_ERRORS`, ``pool`` one
        of :data:`POOLS`."""
        self._upstream_errors[kind, pool].inc()

    def cimd_fetched(self, outcome: str, seconds: float | None) -> None:
        """A network fetch of a metadata document ended: ``ok`` or the kind of its
        failure (``cimd.fetch.<kind>``); ``seconds`` when it reached the network."""
        kind = outcome.rsplit(".", 1)[-1]
        self.cimd_fetches.labels(kind if kind in _FETCH_OUTCOMES else OTHER).inc()
        if seconds is not None:
            self.cimd_fetch_seconds.observe(seconds)

    def storage_failed(self) -> None:
        self.storage_errors.inc()

    def registry_counts(self, counts: Mapping[str, int], when: float | None = None) -> None:
        """The registry's sizes by status, as just read from storage."""
        for status in STATUSES:
            self.registry_clients.labels(status).set(counts.get(status, 0))
        self.registry_read_at = time.time() if when is None else when
        self.registry_refreshed.set(self.registry_read_at)

    def render(self) -> bytes:
        """The text exposition format (version 0.0.4)."""
        return generate_latest(self.registry)


class PassThroughCounts(Collector):
    """``dcr_gateway_passthrough_requests_total``, counted in plain integers.

    The one metric on the pass-through path, where a ``Counter`` child's ``inc`` (a lock,
    a few Python calls) would be a measurable part of the gateway's own work: here a
    request costs one dictionary lookup and an integer addition, and the counts become
    a counter family only when scraped.  The event loop is one thread, so nothing races.
    """

    NAME = PREFIX + "passthrough_requests"

    def __init__(self) -> None:
        #: (method, status // 100) -> [count]; every bounded key exists from the start.
        self._counts: dict[tuple[str, int], list[int]] = {
            (method, index + 1): [0]
            for method in (*METHODS, OTHER)
            for index in range(len(STATUS_CLASSES))
        }

    def count(self, method: str, status: int) -> None:
        cell = self._counts.get((method, status // 100))
        if cell is None:
            key = (method if method in METHODS else OTHER, min(max(status // 100, 1), 5))
            cell = self._counts[key]
        cell[0] += 1

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            self.NAME,
            "Requests relayed untouched, by method and the status class of the answer",
            labels=("method", "status_class"),
        )
        for (method, klass), cell in self._counts.items():
            family.add_metric((method, STATUS_CLASSES[klass - 1]), cell[0])
        yield family

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self.NAME, "", labels=("method", "status_class"))


def _fetch_outcomes() -> frozenset[str]:
    from gateway.cimd.fetch import RULES

    return frozenset({"ok", *(rule.rsplit(".", 1)[-1] for rule in RULES)})


_FETCH_OUTCOMES = _fetch_outcomes()
