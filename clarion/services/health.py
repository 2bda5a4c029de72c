"""The health score as a service (docs/analytics.md, "Health score"): the facts of each
window read from the rollups and the state now (outbox, Redis, broker), scored by
domain/health.py, exported on ``/metrics``, and an alert to the operator's webhook
endpoints once per episode below the threshold.

The alert is an ordinary notification (type ``clarion.health_alert``, channel ``webhook``)
to the user named by ``CLARION_HEALTH_ALERT_USER``: it is signed, retried and recorded as
every webhook is, and an operator subscribes by registering a webhook endpoint for that
user (or for that type).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from clarion.domain import health
from clarion.domain.latency import BUCKETS, percentile
from clarion.domain.rollup import day_of, hour_of
from clarion.domain.send_command import SendCommand
from clarion.domain.types import ChannelName, EventType, Priority
from clarion.hub.hub import Hub
from clarion.metrics import HEALTH_COMPONENT, HEALTH_SCORE
from clarion.services.clock import as_utc, utcnow
from clarion.services.recent import Recent
from clarion.services.sending import SendingService
from clarion.store import deliveries as delivery_store
from clarion.store import health_alerts as alert_store
from clarion.store import rollup_reads as store
from clarion.store.db import Database

log = logging.getLogger("clarion.health")

WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
ALERT_TYPE = "clarion.health_alert"
#: An episode ends when the score is back this far above the threshold (no flapping).
HYSTERESIS = 5.0
#: Least time between two alert checks in one process.
CHECK_EVERY = 60.0
#: How long a computed score (all windows, now) is answered again: the dashboard and the
#: endpoint compute it at most once a second per process, however many poll them
#: (docs/analytics.md; ``computed_at`` says when it was).
FRESH_FOR = 1.0
#: Up to this age a score is still answered, while a new one is computed in the
#: background: a screen polling the dashboard never waits for the computation (it would be
#: the slowest of its requests, once a second). Older than this, a caller waits for a new one.
STALE_FOR = 3.0
E = EventType


class HealthService:
    def __init__(
        self,
        db: Database,
        hub: Hub,
        sending: SendingService,
        *,
        threshold: float,
        alert_user: str,
        targets: health.Targets | None = None,
    ) -> None:
        self._db = db
        self._hub = hub
        self._sending = sending
        self.threshold = threshold
        self.alert_user = alert_user
        self.targets = targets or health.Targets()
        self._next_check = 0.0
        # The score of all windows now, shared by every caller (see services/recent.py).
        self.recent: Recent[dict[str, Any]] = Recent(
            lambda: self._score(None, utcnow()),
            fresh_for=FRESH_FOR,
            stale_for=STALE_FOR,
            name="clarion-health-score",
            log=log,
        )

    async def score(self, window: str | None = None, now: datetime | None = None) -> dict[str, Any]:
        """The score with every component; ``window`` shows that window alone. The score
        of all windows now is computed at most every :data:`FRESH_FOR` seconds, once for
        every caller meanwhile (the answer is shared: read it, do not change it); one up to
        :data:`STALE_FOR` seconds old is answered while the next is computed in the
        background."""
        if window is not None or now is not None:
            return await self._score(window, now or utcnow())
        return await self.recent.get()

    async def close(self) -> None:
        """Wait for a background computation of the score to end (it is short)."""
        await self.recent.close()

    async def _score(self, window: str | None, now: datetime) -> dict[str, Any]:
        state, data = await asyncio.gather(self._state(now), self._read(now))
        names = [window] if window is not None else list(WINDOWS)
        scored = [health.score_window(_facts(name, data, state), self.targets) for name in names]
        combined = health.combine(scored)
        if window is None:
            self._export(combined)
        return _json(combined, now)

    async def _state(self, now: datetime) -> dict[str, Any]:
        async with self._db.connect() as conn:
            oldest = await delivery_store.oldest_due(conn, now)
        status = self._hub.status()
        degraded = []
        if status["redis"] is not None and not status["redis"]["healthy"]:
            degraded.append("redis")
        if not status["broker"]["healthy"]:
            degraded.append("broker")
        age = 0.0 if oldest is None else max(0.0, (now - as_utc(oldest)).total_seconds())
        return {"backlog": age, "degraded": degraded}

    async def _read(self, now: datetime) -> _Data:
        """Every window and the period before it, in four reads: the sums of the counts
        and of the latency per period between the windows' edges, hourly for the last 50
        hours, daily for the last 14 days (added up by the database: a few hundred rows,
        not one per bucket)."""
        hour, day = hour_of(now), day_of(now)
        edges = {grain: _edges(hour if grain == "hour" else day, grain) for grain in _GRAINS}
        starts = {
            grain: _edges(hour if grain == "hour" else day, grain, before=False)
            for grain in _GRAINS
        }
        by = ("event", "channel", "provider")
        kinds = {"event": list(_COUNTED)}
        lat = {"metric": "delivered"}

        # Independent reads on their own connections: the database runs them at once.
        db = self._db
        hourly, daily, lat_h, lat_d = await asyncio.gather(
            store.parts(db, edges["hour"], "hour", kinds, by=by),
            store.parts(db, edges["day"], "day", kinds, by=by),
            store.parts(db, starts["hour"], "hour", lat, by=("channel",), latency=True),
            store.parts(db, starts["day"], "day", lat, by=("channel",), latency=True),
        )
        return _Data(
            hour,
            day,
            edges,
            starts,
            {"hour": hourly, "day": daily},
            {"hour": lat_h, "day": lat_d},
        )

    def _export(self, combined: health.HealthScore) -> None:
        HEALTH_SCORE.set(combined.score)
        worst = next(
            (w for w in combined.windows if w.window == combined.worst_window),
            min(combined.windows, key=lambda w: w.score),
        )
        for c in worst.components:
            HEALTH_COMPONENT.labels(component=c.name).set(c.score)

    # --- alerts ------------------------------------------------------------------------------
    async def run_once(self) -> int:
        """For the pipeline loop: at most once a minute, score and open or close an
        episode; returns 1 when an alert was sent."""
        clock = time.monotonic()
        if self.threshold <= 0 or clock < self._next_check:
            return 0
        self._next_check = clock + CHECK_EVERY
        return await self.check()

    async def check(self, now: datetime | None = None) -> int:
        now = now or utcnow()
        result = await self.score(now=now)
        value = float(result["score"])
        async with self._db.begin() as conn:
            if value < self.threshold:
                opened = await alert_store.open_episode(conn, now, value, result["worst_window"])
                if not opened:
                    await alert_store.note_low(conn, value)
            elif value >= self.threshold + HYSTERESIS:
                if await alert_store.close_episode(conn, now):
                    log.info("health score back to %.1f: the alert episode ended", value)
                opened = False
            else:
                opened = False
        if not opened:
            return 0
        log.warning("health score %.1f is below %.1f: alerting", value, self.threshold)
        await self._sending.send(
            SendCommand(
                user_ids=(self.alert_user,),
                type=ALERT_TYPE,
                title=f"Clarion health score {value:.0f} is below {self.threshold:.0f}",
                message=_summary(result),
                priority=Priority.HIGH,
                channels=(ChannelName.WEBHOOK,),
                data={
                    "score": value,
                    "threshold": self.threshold,
                    "worst_window": result["worst_window"],
                    "components": result["components"],
                },
            )
        )
        return 1


#: The events the score reads.
_COUNTED = (E.ACCEPTED, E.DELIVERED, E.SENT, E.FAILED, E.DEAD, E.READ, E.UNSUBSCRIBED)
#: Each window, and the one before it, in buckets: (grain, first back, last back) where
#: "back" counts buckets before the current one (0: the current hour or day).
_SPANS = {
    "1h": ("hour", 1, 0),  # the current hour and the one before it
    "24h": ("hour", 24, 0),  # the current hour and the 24 before it
    "7d": ("day", 6, 0),  # today and the 6 days before it
}


_GRAINS = ("hour", "day")


def _step(grain: str) -> timedelta:
    return timedelta(hours=1) if grain == "hour" else timedelta(days=1)


def _bounds(name: str, top: datetime) -> tuple[datetime, datetime, datetime]:
    """A window's (period before it, start, end) with ``top`` the current bucket."""
    grain, back, _ = _SPANS[name]
    step = _step(grain)
    start = top - back * step
    return start - (back + 1) * step, start, top + step


def _edges(top: datetime, grain: str, *, before: bool = True) -> list[datetime]:
    """The edges of every window of ``grain`` (and of the period before each one, with
    ``before``), increasing: each period between two edges lies wholly inside or outside
    each window."""
    out: set[datetime] = set()
    for name, (g, _back, _) in _SPANS.items():
        if g == grain:
            first, start, end = _bounds(name, top)
            out |= {first, start, end} if before else {start, end}
    return sorted(out)


@dataclass(frozen=True)
class _Data:
    hour: datetime
    day: datetime
    #: Per grain: the edges of the periods the rows of ``counts`` and ``latency`` sum.
    edges: dict[str, list[datetime]]
    latency_edges: dict[str, list[datetime]]
    counts: dict[str, list[Sequence[Any]]]
    latency: dict[str, list[Sequence[Any]]]


def _facts(name: str, data: _Data, state: dict[str, Any]) -> health.WindowFacts:
    grain = _SPANS[name][0]
    before, start, _end = _bounds(name, data.hour if grain == "hour" else data.day)
    edges, lat_edges = data.edges[grain], data.latency_edges[grain]
    n: dict[str, int] = defaultdict(int)
    providers: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    inbox = prev_read = prev_inbox = 0
    for part, event, channel, provider, count, _ in data.counts[grain]:
        at, c = edges[int(part)], int(count)
        if before <= at < start:  # the period before, for the read-rate trend
            if event == E.READ:
                prev_read += c
            elif event == E.ACCEPTED and channel == ChannelName.IN_APP:
                prev_inbox += c
            continue
        if at < start:
            continue
        n[event] += c
        if event == E.ACCEPTED and channel == ChannelName.IN_APP:
            inbox += c
        if provider and event in (E.DELIVERED, E.SENT, E.FAILED, E.DEAD):
            providers[provider][0] += c
            if event in (E.FAILED, E.DEAD):
                providers[provider][1] += c
    hists: dict[str, list[int]] = defaultdict(lambda: [0] * BUCKETS)
    for part, channel, le, count in data.latency[grain]:
        if lat_edges[int(part)] >= start:
            hists[channel][int(le)] += int(count)
    return health.WindowFacts(
        window=name,
        accepted=n[E.ACCEPTED],
        delivered=n[E.DELIVERED] + n[E.SENT],
        dead=n[E.DEAD],
        failed_attempts=n[E.FAILED],
        unsubscribed=n[E.UNSUBSCRIBED],
        latency_p95_ms={ch: percentile(h, 0.95) for ch, h in hists.items()},
        provider_attempts={p: (a, e) for p, (a, e) in providers.items()},
        read_rate=min(1.0, n[E.READ] / inbox) if inbox else None,
        previous_read_rate=min(1.0, prev_read / prev_inbox) if prev_inbox else None,
        backlog_oldest_age_s=state["backlog"],
        degraded=state["degraded"],
    )


def _summary(result: dict[str, Any]) -> str:
    low = sorted(result["components"], key=lambda c: c["score"])[:3]
    return "; ".join(f"{c['name']} {c['score']:.0f}: {c['advice']}" for c in low)[:1000]


def _json(combined: health.HealthScore, now: datetime) -> dict[str, Any]:
    windows: list[dict[str, Any]] = [
        {
            "window": w.window,
            "score": round(w.score, 2),
            "enough_data": w.enough_data,
            "components": [_component(c) for c in w.components],
        }
        for w in combined.windows
    ]
    worst = next((w for w in windows if w["window"] == combined.worst_window), None)
    if worst is None:
        worst = min(windows, key=lambda w: w["score"])
    return {
        "score": round(combined.score, 2),
        "worst_window": combined.worst_window,
        "computed_at": now.isoformat(),
        "components": worst["components"],
        "windows": windows,
    }


def _component(c: health.Component) -> dict[str, Any]:
    out = asdict(c)
    out["score"] = round(c.score, 2)
    return out
