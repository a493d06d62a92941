"""Prometheus metrics (``/-/metrics``): what the gateway decided, relayed and failed at."""

from gateway.metrics.collect import Metrics

__all__ = ["Metrics"]
