"""Process-wide Prometheus metrics of the API and the pipeline (one set per process, on
the default registry, so several apps built in one test process share them)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Metric
from prometheus_client.core import CounterMetricFamily

HTTP_REQUESTS = Counter(
    "clarion_http_requests_total",
    "HTTP requests by route and status",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "clarion_http_request_duration_seconds",
    "HTTP request latency by route",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
NOTIFICATIONS_ACCEPTED = Counter(
    "clarion_notifications_accepted_total", "Notifications accepted, by type", ["type"]
)
DEPENDENCY_ERRORS = Counter(
    "clarion_dependency_errors_total",
    "Operations that failed because a dependency did not answer (the outage itself is "
    "logged once, when it begins and when it ends)",
    ["dependency"],
)
SEND_GROUP_SIZE = Histogram(
    "clarion_send_group_size",
    "Sends written together in one transaction by the group commit",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)

# --- delivery pipeline ---------------------------------------------------------------------
DELIVERIES = Counter(
    "clarion_deliveries_total",
    "Delivery outcomes written by workers, by channel and resulting status",
    ["channel", "status"],
)
DELIVERY_ATTEMPT_LATENCY = Histogram(
    "clarion_delivery_attempt_duration_seconds",
    "Time one provider call took, by channel",
    ["channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
OUTBOX_BACKLOG = Gauge(
    "clarion_outbox_backlog", "Deliveries due and not yet claimed (sampled by workers)"
)

# --- live sockets --------------------------------------------------------------------------
# Plain integers, read at scrape time: a Prometheus counter's lock on every socket write of
# a broadcast to 10,000 sockets would cost more than the write bookkeeping itself.
WS_WRITES = {"frames": 0, "writes": 0}


class _LiveWrites:
    """``clarion_ws_frames_sent_total`` and ``clarion_ws_socket_writes_total``: frames
    written to live WebSockets and the socket writes that carried them (fewer writes than
    frames: batches went out whole, see api/frame_writer.write_frames)."""

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "clarion_ws_frames_sent", "Frames written to live WebSockets", WS_WRITES["frames"]
        )
        yield CounterMetricFamily(
            "clarion_ws_socket_writes",
            "Socket writes that carried live WebSocket frames",
            WS_WRITES["writes"],
        )


REGISTRY.register(_LiveWrites())

# --- analytics -----------------------------------------------------------------------------
HEALTH_SCORE = Gauge(
    "clarion_health_score", "The health score 0-100 (docs/analytics.md), set when computed"
)
HEALTH_COMPONENT = Gauge(
    "clarion_health_component_score",
    "Each component of the health score 0-100 in its worst window, set when computed",
    ["component"],
)
