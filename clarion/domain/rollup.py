"""Folding events into rollups (docs/analytics.md, "Rollups"): counts per hour and per day
and dimension, and latency histograms with fixed bucket edges; and the same sums over
fewer dimensions (the narrow rollups), which most reads need and which hold tens of rows
per bucket where the full ones hold thousands.

Pure: the store reads a page of events, :func:`fold` turns it into increments, the store
adds them. Because the increments are sums, folding events in any order and in any
grouping gives the same rollups as folding them all at once — which is what lets late and
out-of-order events simply be added to the hour they happened in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from clarion.domain.latency import bucket_of
from clarion.domain.types import EventType

#: The dimensions of a count, in key order after the bucket (the primary key of the
#: count tables in store/schema.py).
COUNT_DIMS = (
    "event",
    "ntype",
    "channel",
    "template",
    "template_key",
    "provider",
    "reason",
    "variant",
)
#: The dimensions of a latency histogram, after the bucket and before the edge index.
LATENCY_DIMS = ("metric", "channel", "ntype", "variant")

#: The narrow rollups, each a projection of a full one onto fewer dimensions.
#: Totals: what the overall figures, the per-channel ones, the failure reasons, the
#: health score and unfiltered trends read.
TOTAL_DIMS = ("event", "channel", "provider", "reason")
#: Per type and template: the per-type and per-template figures of the dashboard. Only
#: what those figures use of the channel and the reason is kept (:func:`type_key`).
TYPE_DIMS = ("event", "ntype", "template", "template_key", "channel", "reason")
#: Latency per channel (no type, no variant): the dashboard's and the health score's.
LATENCY_CHANNEL_DIMS = ("metric", "channel")

#: Which events carry which latency (docs/analytics.md, "Latencies").
LATENCY_METRIC = {
    EventType.DELIVERED.value: "delivered",  # accepted -> delivered, per channel
    EventType.SENT.value: "delivered",  # handed to the relay (email, SMS)
    EventType.SEEN.value: "seen",  # accepted -> seen
    EventType.READ.value: "read",  # delivered (in the inbox) -> read
}

CountKey = tuple[datetime, str, str, str, str, str, str, str, str]
LatencyKey = tuple[datetime, str, str, str, str, int]
Key = tuple[Any, ...]


@dataclass
class Increments:
    """What a page of events adds: ``counts[key] = [count, value_sum]`` and
    ``latency[key] = count``, keyed by hour (``hourly``) and by day (``daily``)."""

    hourly: dict[CountKey, list[float]] = field(default_factory=dict)
    daily: dict[CountKey, list[float]] = field(default_factory=dict)
    latency_hourly: dict[LatencyKey, int] = field(default_factory=dict)
    latency_daily: dict[LatencyKey, int] = field(default_factory=dict)
    events: int = 0

    def totals(self, daily: bool) -> dict[Key, list[float]]:
        """The counts by :data:`TOTAL_DIMS` (hourly, or ``daily``)."""
        return _project_counts(self.daily if daily else self.hourly, _total_key)

    def types(self, daily: bool) -> dict[Key, list[float]]:
        """The counts by :data:`TYPE_DIMS`."""
        return _project_counts(self.daily if daily else self.hourly, _type_key)

    def latency_channels(self, daily: bool) -> dict[Key, int]:
        """The histograms by :data:`LATENCY_CHANNEL_DIMS`."""
        out: dict[Key, int] = {}
        for (bucket, metric, channel, _ntype, _variant, le), n in (
            self.latency_daily if daily else self.latency_hourly
        ).items():
            key = (bucket, metric, channel, le)
            out[key] = out.get(key, 0) + n
        return out


def hour_of(at: datetime) -> datetime:
    """The UTC hour ``at`` falls in (naive datetimes are UTC, as SQLite returns them)."""
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.replace(minute=0, second=0, microsecond=0)


def day_of(at: datetime) -> datetime:
    return hour_of(at).replace(hour=0)


def weight(event: Mapping[Any, Any]) -> int:
    """How many facts one event row stands for: a mark-all-read is one row whose value is
    the number of notifications it read; every other row is one."""
    if (
        event["type"] in (EventType.READ, EventType.SEEN)
        and event.get("notification_id") is None
        and event.get("value") is not None
    ):
        return max(0, int(event["value"]))
    return 1


def type_key(event: str, channel: str, reason: str) -> tuple[str, str]:
    """The channel and reason a per-type count keeps: the channel of ``accepted`` (whether
    the notification has an inbox copy) and the reason of ``delivered``/``sent`` (whether
    it reached a user without one); '' for every other event. That is all the per-type
    figures use (services/analytics.py, ``Tally``), and it keeps the rollup ~5x smaller."""
    return (
        channel if event == EventType.ACCEPTED else "",
        reason if event in (EventType.DELIVERED, EventType.SENT) else "",
    )


def _total_key(k: CountKey) -> Key:
    bucket, event, _ntype, channel, _template, _key, provider, reason, _variant = k
    return (bucket, event, channel, provider, reason)


def _type_key(k: CountKey) -> Key:
    bucket, event, ntype, channel, template, template_key, _provider, reason, _variant = k
    return (bucket, event, ntype, template, template_key, *type_key(event, channel, reason))


def _project_counts(counts: Mapping[CountKey, list[float]], key: Any) -> dict[Key, list[float]]:
    out: dict[Key, list[float]] = {}
    for k, (c, v) in counts.items():
        nk = key(k)
        slot = out.get(nk)
        if slot is None:
            out[nk] = [c, v]
        else:
            slot[0] += c
            slot[1] += v
    return out


def _dim(value: Any) -> str:
    return "" if value is None else str(value)


def fold(events: Iterable[Mapping[Any, Any]]) -> Increments:
    """The rollup increments of ``events`` (rows of the events table)."""
    inc = Increments()
    for e in events:
        inc.events += 1
        hour = hour_of(e["created_at"])
        day = hour.replace(hour=0)
        kind = str(e["type"])
        dims = (
            kind,
            _dim(e.get("ntype")),
            _dim(e.get("channel")),
            _dim(e.get("template")),
            _dim(e.get("template_key")),
            _dim(e.get("provider")),
            _dim(e.get("reason")),
            _dim(e.get("variant")),
        )
        n = weight(e)
        value = float(e["value"]) if kind == EventType.CONVERTED and e.get("value") else 0.0
        for table, bucket in ((inc.hourly, hour), (inc.daily, day)):
            key: CountKey = (bucket, *dims)
            slot = table.get(key)
            if slot is None:
                table[key] = [n, value]
            else:
                slot[0] += n
                slot[1] += value
        metric = LATENCY_METRIC.get(kind)
        ms = e.get("latency_ms")
        if metric is not None and ms is not None:
            le = bucket_of(float(ms))
            rest = (metric, dims[2], dims[1], dims[7], le)
            for lat, bucket in ((inc.latency_hourly, hour), (inc.latency_daily, day)):
                lkey: LatencyKey = (bucket, *rest)
                lat[lkey] = lat.get(lkey, 0) + 1
    return inc
