"""Prometheus metrics of the realtime hub.

Metric objects are created once per registry and cached: tests build several apps in one
process, and registering the same metric name twice on a registry raises. Everybody asks
:func:`hub_metrics` (default registry) or ``hub_metrics(registry)`` and gets the same
objects back.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

#: Push latency buckets: a push is "commit -> socket write", expected in milliseconds.
PUSH_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

BACKENDS = ("memory", "redis", "postgres", "local")


@dataclass(frozen=True, slots=True)
class HubMetrics:
    """The hub's metric objects; see ``docs/realtime.md`` for their meaning."""

    live_connections: Gauge
    messages_published: Counter
    messages_pushed: Counter
    push_latency: Histogram
    slow_consumer_disconnects: Counter
    redis_errors: Counter
    transport_errors: Counter
    broker_in_use: Gauge

    def set_broker_in_use(self, backend: str) -> None:
        """Exactly one backend label is 1: the transport cross-node pushes use right now."""
        for name in BACKENDS:
            self.broker_in_use.labels(backend=name).set(1 if name == backend else 0)


_lock = threading.Lock()
_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, HubMetrics] = weakref.WeakKeyDictionary()


def hub_metrics(registry: CollectorRegistry | None = None) -> HubMetrics:
    """The hub metrics registered on ``registry`` (default: the process-wide one)."""
    reg = REGISTRY if registry is None else registry
    with _lock:
        found = _by_registry.get(reg)
        if found is None:
            found = _create(reg)
            _by_registry[reg] = found
        return found


def _create(reg: CollectorRegistry) -> HubMetrics:
    return HubMetrics(
        live_connections=Gauge(
            "clarion_ws_connections",
            "Live WebSocket/SSE connections on this process.",
            registry=reg,
        ),
        messages_published=Counter(
            "clarion_hub_messages_published",
            "Messages handed to the broker by publish/publish_many.",
            ["transport"],
            registry=reg,
        ),
        messages_pushed=Counter(
            "clarion_hub_messages_pushed",
            "Messages queued to a local subscriber (one per subscriber).",
            registry=reg,
        ),
        push_latency=Histogram(
            "clarion_push_latency_seconds",
            "Commit -> socket write latency, observed by the WebSocket layer.",
            buckets=PUSH_LATENCY_BUCKETS,
            registry=reg,
        ),
        slow_consumer_disconnects=Counter(
            "clarion_ws_slow_consumer_disconnects",
            "Subscriptions closed because their bounded queue overflowed (close code 4008).",
            registry=reg,
        ),
        redis_errors=Counter(
            "clarion_redis_errors",
            "Redis errors swallowed by a hub component (it fell back instead).",
            ["component"],
            registry=reg,
        ),
        transport_errors=Counter(
            "clarion_hub_transport_errors",
            "Cross-node publish or listen errors per broker transport.",
            ["transport"],
            registry=reg,
        ),
        broker_in_use=Gauge(
            "clarion_hub_broker_in_use",
            "1 for the transport cross-node pushes currently use, 0 for the others.",
            ["backend"],
            registry=reg,
        ),
    )
