"""Reading analytics (docs/analytics.md): the dashboard, a user's metrics, trends, the raw
event export and live counters. Everything over a time range is read from the rollups
(store/rollup_reads.py), so its cost depends on the number of hours and dimensions, not on
the number of events; a user's metrics and the export read raw events.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from collections import defaultdict
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from clarion.domain.engagement import engagement_score
from clarion.domain.events import OUTSIDE_INBOX
from clarion.domain.latency import BUCKETS, percentile
from clarion.domain.rollup import day_of, hour_of
from clarion.domain.trends import flag_anomalies, previous_period
from clarion.domain.types import ChannelName, EventType
from clarion.errors import ValidationFailed
from clarion.services import analytics_export
from clarion.services.clock import as_utc, utcnow
from clarion.store import events as event_store
from clarion.store import rollup_reads as store
from clarion.store.db import Database

E = EventType
IN_APP = str(ChannelName.IN_APP)
#: Longest range of a rollup read.
MAX_SPAN = timedelta(days=400)
#: Trailing points the anomaly flags compare each point with (docs/analytics.md).
BASELINE_POINTS = 24

#: The series ``/trends`` can draw: event counts, and rates of two counts.
COUNT_METRICS: Mapping[str, tuple[str, ...]] = {
    "accepted": (E.ACCEPTED,),
    "delivered": (E.DELIVERED, E.SENT),
    "failed": (E.FAILED,),
    "dead": (E.DEAD,),
    "suppressed": (E.SUPPRESSED,),
    "held": (E.HELD,),
    "seen": (E.SEEN,),
    "read": (E.READ,),
    "clicked": (E.CLICKED,),
    "converted": (E.CONVERTED,),
    "unsubscribed": (E.UNSUBSCRIBED,),
}
RATE_METRICS = ("delivery_rate", "read_rate", "click_through_rate", "conversion_rate")
#: The events each rate is computed from (a series reads only those rows).
_RATE_EVENTS: Mapping[str, tuple[str, ...]] = {
    "delivery_rate": (E.ACCEPTED, E.DELIVERED, E.SENT),
    "read_rate": (E.ACCEPTED, E.READ),
    "click_through_rate": (E.ACCEPTED, E.CLICKED),
    "conversion_rate": (E.ACCEPTED, E.DELIVERED, E.SENT, E.CONVERTED),
}
METRICS = (*COUNT_METRICS, *RATE_METRICS, "latency_p95_ms")
INTERVALS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}


def parse_time(value: str | None, field: str) -> datetime | None:
    """An ISO 8601 time (``Z`` or an offset; a date alone is midnight UTC)."""
    if value is None or value == "":
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise ValidationFailed(
            f"{field} is not an ISO 8601 time",
            [{"field": field, "problem": "expected e.g. 2026-12-01T00:00:00Z"}],
        ) from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def resolve_range(
    start: str | None,
    end: str | None,
    now: datetime,
    *,
    default: timedelta,
    not_before: datetime | None = None,
    grain: timedelta = timedelta(hours=1),
) -> tuple[datetime, datetime]:
    """``[from, to)`` widened to whole ``grain`` (hours or days): ``to`` defaults to now,
    ``from`` to ``to - default``. 422 when ``from`` is not before ``to``, the span is over
    :data:`MAX_SPAN`, or ``from`` is before ``not_before`` (raw events past retention)."""
    hi = parse_time(end, "to") or now
    lo = parse_time(start, "from") or hi - default
    if lo >= hi:
        raise ValidationFailed(
            "from must be before to", [{"field": "from", "problem": "not before to"}]
        )
    if hi - lo > MAX_SPAN:
        raise ValidationFailed(
            f"the range is over {MAX_SPAN.days} days",
            [{"field": "from", "problem": f"at most {MAX_SPAN.days} days before to"}],
        )
    if not_before is not None and lo < not_before:
        raise ValidationFailed(
            "from is before the raw events' retention",
            [{"field": "from", "problem": f"raw events are kept since {not_before.isoformat()}"}],
        )
    floor = day_of if grain >= timedelta(days=1) else hour_of
    lo = floor(lo)
    top = floor(hi)
    return lo, (top if top == hi else top + grain)


def _rate(part: float, whole: float) -> float | None:
    return None if whole <= 0 else round(part / whole, 6)


def _percentiles(hist: Sequence[int]) -> dict[str, float | None]:
    return {
        name: (None if (v := percentile(hist, q)) is None else round(v, 1))
        for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
    } | {"count": sum(hist)}


class Tally:
    """Event counts by kind, for one slice (a channel, a type, a template, or all)."""

    def __init__(self) -> None:
        self.n: dict[str, int] = defaultdict(int)
        self.value = 0.0
        self.inbox = 0  # accepted with an inbox copy
        self.outside = 0  # reached deliveries of notifications without one

    def add(self, event: str, channel: str, reason: str, count: int, value: float) -> None:
        self.n[event] += count
        if event == E.CONVERTED:
            self.value += value
        if event == E.ACCEPTED and channel == IN_APP:
            self.inbox += count
        if event in (E.DELIVERED, E.SENT) and reason == OUTSIDE_INBOX:
            self.outside += count

    @property
    def reached(self) -> int:
        """Deliveries outside the inbox that reached the user or their provider."""
        return self.n[E.DELIVERED] + self.n[E.SENT]

    def summary(self) -> dict[str, Any]:
        n, accepted = self.n, self.n[E.ACCEPTED]
        delivered = min(accepted, self.inbox + self.outside) if accepted else self.inbox
        return {
            "accepted": accepted,
            "delivered": delivered,
            "in_inbox": self.inbox,
            "reached_other_channels": self.reached,
            "held": n[E.HELD],
            "suppressed": n[E.SUPPRESSED],
            "failed_attempts": n[E.FAILED],
            "dead": n[E.DEAD],
            "seen": n[E.SEEN],
            "read": n[E.READ],
            "clicked": n[E.CLICKED],
            "converted": n[E.CONVERTED],
            "conversion_value": round(self.value, 6),
            "unsubscribed": n[E.UNSUBSCRIBED],
            "archived": n[E.ARCHIVED],
        }

    def rates(self) -> dict[str, float | None]:
        s = self.summary()
        return {
            "delivery_rate": _rate(s["delivered"], s["accepted"]),
            "provider_success_rate": _rate(self.reached, self.reached + s["dead"]),
            "seen_rate": _rate(s["seen"], s["in_inbox"]),
            "read_rate": _rate(s["read"], s["in_inbox"]),
            "click_through_rate": _rate(s["clicked"], s["in_inbox"]),
            "conversion_rate": _rate(s["converted"], s["delivered"]),
            "opt_out_rate": _rate(s["unsubscribed"], s["accepted"]),
        }

    def funnel(self) -> list[dict[str, Any]]:
        s = self.summary()
        stages = ("accepted", "delivered", "seen", "read", "clicked", "converted")
        return [
            {"stage": st, "count": s[st], "of_accepted": _rate(s[st], s["accepted"])}
            for st in stages
        ]


def _tallies(
    rows: Sequence[tuple[Any, ...]], key: Callable[[tuple[Any, ...]], str | None]
) -> dict[str, Tally]:
    out: dict[str, Tally] = {}
    for row in rows:
        k = key(row)
        if k is None:
            continue
        t = out.get(k)
        if t is None:
            t = out[k] = Tally()
        t.add(row[0], row[1], row[4], int(row[6]), float(row[7]))
    return out


class AnalyticsService:
    def __init__(self, db: Database, *, retention_days: int) -> None:
        self._db = db
        self.retention = timedelta(days=retention_days)

    # --- the dashboard ---------------------------------------------------------------------
    async def totals(
        self, start: datetime, end: datetime, filters: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Counts and rates over ``[start, end)`` (whole hours), from the rollups."""
        got = await store.counts(
            self._db, start, end, ("event", "channel", "reason"), filters, now=utcnow()
        )
        rows = [(r[0], r[1], "", "", r[2], "", r[3], r[4]) for r in got]
        t = _tallies(rows, lambda _r: "all").get("all", Tally())
        return {**t.summary(), "rates": t.rates()}

    async def dashboard(self, start: datetime, end: datetime) -> dict[str, Any]:
        now, db = utcnow(), self._db
        # Three reads of the narrow rollups (tens of rows per bucket each), at once, each
        # on a connection of its own: the totals, the counts per type and template, the
        # latency per channel.
        by = ("event", "channel", "ntype", "template_key", "reason", "template")
        total_rows, type_rows, lat = await asyncio.gather(
            store.counts(db, start, end, ("event", "channel", "reason"), now=now),
            store.counts(db, start, end, by, now=now, per_type=True),
            store.latency(db, start, end, ("metric", "channel"), now=now),
        )
        rows = [(r[0], r[1], "", "", r[2], "", r[3], r[4]) for r in total_rows]
        everything = _tallies(rows, lambda _r: "all").get("all", Tally())
        channels = _tallies(rows, lambda r: r[1] or None)
        types = _tallies(type_rows, lambda r: r[2] or None)
        templates = _tallies(type_rows, lambda r: r[3] or (f"kind:{r[5]}" if r[5] else None))
        hist: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * BUCKETS)
        for metric, channel, le, count in lat:
            hist[(metric, channel)][int(le)] += int(count)
        reasons: dict[tuple[str, str, str], int] = defaultdict(int)
        for r in rows:
            if r[0] in (E.FAILED, E.DEAD, E.SUPPRESSED, E.HELD) and r[4]:
                reasons[(str(r[0]), r[1], r[4])] += int(r[6])

        def top(kinds: tuple[str, ...]) -> list[dict[str, Any]]:
            found = sorted(
                ((n, why, k, ch) for (k, ch, why), n in reasons.items() if k in kinds),
                key=lambda x: (-x[0], x[1]),
            )
            return [
                {"event": k, "channel": ch or None, "reason": why, "count": n}
                for n, why, k, ch in found[:10]
            ]

        def sliced(tallies: dict[str, Tally]) -> dict[str, Any]:
            return {k: {**t.summary(), "rates": t.rates()} for k, t in sorted(tallies.items())}

        by_channel = sliced(channels)
        for (metric, channel), h in hist.items():
            if metric == "delivered" and channel in by_channel:
                by_channel[channel]["latency_ms"] = _percentiles(h)
        return {
            "from": start.isoformat(),
            "to": end.isoformat(),
            "totals": everything.summary(),
            "rates": everything.rates(),
            "funnel": everything.funnel(),
            "funnel_by_channel": {k: t.funnel() for k, t in sorted(channels.items())},
            "by_channel": by_channel,
            "by_type": sliced(types),
            "by_template": sliced(templates),
            "latency_ms": {
                metric: {
                    ch or "all": _percentiles(h)
                    for (m, ch), h in sorted(hist.items())
                    if m == metric
                }
                for metric in ("delivered", "seen", "read")
            },
            "top_failure_reasons": top((E.FAILED, E.DEAD)),
            "top_suppression_reasons": top((E.SUPPRESSED, E.HELD)),
        }

    # --- one user ----------------------------------------------------------------------------
    async def user_metrics(self, user_id: str, start: datetime, end: datetime) -> dict[str, Any]:
        """What this user received and did in ``[start, end)``, from raw events."""
        async with self._db.connect() as conn:
            rows = await event_store.for_user(conn, user_id, start, end)
        t = Tally()
        per_channel: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        suppressions: dict[str, int] = defaultdict(int)
        read_ms: list[int] = []
        last_seen = last_active = None
        for e in rows:
            kind, channel, reason = e.type.value, e.channel or "", e.reason or ""
            n = int(e.value or 0) if kind == E.READ and e.notification_id is None else 1
            t.add(kind, channel, reason, n, e.value or 0.0)
            if channel and kind in (E.DELIVERED, E.SENT, E.FAILED, E.DEAD, E.SUPPRESSED, E.HELD):
                per_channel[channel][kind] += 1
            if kind == E.ACCEPTED and channel == IN_APP:
                per_channel[IN_APP]["delivered"] += 1
            if kind in (E.SUPPRESSED, E.HELD) and reason:
                suppressions[reason] += 1
            at = as_utc(e.created_at)
            if kind == E.READ and e.latency_ms is not None:
                read_ms.append(e.latency_ms)
            if kind in (E.SEEN, E.READ):
                last_seen = at if last_seen is None or at > last_seen else last_seen
            if kind in (E.SEEN, E.READ, E.CLICKED, E.CONVERTED, E.ARCHIVED, E.UNSUBSCRIBED):
                last_active = at if last_active is None or at > last_active else last_active
        s = t.summary()
        inactive = None if last_active is None else (end - last_active).total_seconds() / 86400
        return {
            "user_id": user_id,
            "from": start.isoformat(),
            "to": end.isoformat(),
            "received": s["accepted"],
            "totals": s,
            "rates": t.rates(),
            "median_time_to_read_ms": statistics.median(read_ms) if read_ms else None,
            "channels": {ch: dict(v) for ch, v in sorted(per_channel.items())},
            "suppressions": dict(sorted(suppressions.items())),
            "last_seen_at": None if last_seen is None else last_seen.isoformat(),
            "last_active_at": None if last_active is None else last_active.isoformat(),
            "engagement_score": round(
                engagement_score(
                    s["in_inbox"] or s["delivered"],
                    s["seen"],
                    s["read"],
                    s["clicked"],
                    s["converted"],
                    None if inactive is None else max(0.0, inactive),
                ),
                2,
            ),
        }

    # --- trends -----------------------------------------------------------------------------
    async def trends(
        self,
        metric: str,
        interval: str,
        start: datetime,
        end: datetime,
        filters: Mapping[str, Any],
    ) -> dict[str, Any]:
        step = INTERVALS[interval]
        prev_start, prev_end = previous_period(start, end)
        lead = step * BASELINE_POINTS  # history before each point, for its anomaly flag
        values = await self._series(metric, interval, prev_start - lead, end, filters)
        times, at = [], prev_start - lead
        while at < end:
            times.append(at)
            at += step
        series = [values.get(t) for t in times]
        flags = flag_anomalies(series, baseline=BASELINE_POINTS)
        offset = len(times) - int((end - start) / step)
        length = end - start
        points = []
        for i in range(offset, len(times)):
            t = times[i]
            points.append(
                {
                    "at": t.isoformat(),
                    "value": series[i],
                    "previous": values.get(t - length),
                    "anomaly": flags[i],
                }
            )
        return {
            "metric": metric,
            "interval": interval,
            "from": start.isoformat(),
            "to": end.isoformat(),
            "previous_from": prev_start.isoformat(),
            "previous_to": prev_end.isoformat(),
            "filters": {k: v for k, v in filters.items() if v is not None},
            "points": points,
        }

    async def _series(
        self, metric: str, interval: str, start: datetime, end: datetime, filters: Mapping[str, Any]
    ) -> dict[datetime, float | None]:
        if metric == "latency_p95_ms":
            lat_rows = await store.latency_series(
                self._db, start, end, interval, {**filters, "metric": "delivered"}
            )
            hists: dict[datetime, list[int]] = defaultdict(lambda: [0] * BUCKETS)
            for bucket, le, n in lat_rows:
                hists[as_utc(bucket)][int(le)] += int(n)
            return {t: percentile(h, 0.95) for t, h in hists.items()}
        wanted = COUNT_METRICS.get(metric) or _RATE_EVENTS[metric]
        rows = await store.series(
            self._db,
            start,
            end,
            interval,
            {**filters, "event": [str(k) for k in wanted]},
            by=("event", "channel", "reason"),
        )
        tallies: dict[datetime, Tally] = defaultdict(Tally)
        for bucket, event, channel, reason, n, value in rows:
            tallies[as_utc(bucket)].add(event, channel, reason, int(n), float(value or 0))
        if metric in COUNT_METRICS:
            kinds = COUNT_METRICS[metric]
            return {t: float(sum(x.n[k] for k in kinds)) for t, x in tallies.items()}
        return {t: x.rates()[metric] for t, x in tallies.items()}

    # --- export and live --------------------------------------------------------------------
    def export(
        self,
        start: datetime,
        end: datetime,
        filters: Mapping[str, Any],
        fmt: str = "ndjson",
        *,
        page: int = analytics_export.PAGE,
    ) -> AsyncGenerator[bytes, None]:
        """Raw events in ``[start, end)`` matching ``filters``, in time order, encoded as
        ``fmt`` (``ndjson`` or ``csv``, with its header row) a page at a time."""
        return self._export(start, end, filters, fmt, page)

    async def _export(
        self, start: datetime, end: datetime, filters: Mapping[str, Any], fmt: str, page: int
    ) -> AsyncGenerator[bytes, None]:
        encode = analytics_export.ndjson if fmt == "ndjson" else analytics_export.csv_rows
        if fmt != "ndjson":
            yield analytics_export.csv_header()
        pages = analytics_export.pages(self._db, start, end, filters, page)
        async with contextlib.aclosing(pages):  # closed with this stream, not later
            async for rows in pages:
                yield encode(rows)

    async def live_counts(self, after_id: int | None) -> tuple[int, dict[str, int]]:
        """Counts of the events written after ``after_id`` (``None``: start now), and the
        id to pass next time."""
        async with self._db.connect() as conn:
            return await event_store.counts_after(conn, after_id)

    def retention_start(self, now: datetime | None = None) -> datetime:
        return (now or utcnow()) - self.retention
