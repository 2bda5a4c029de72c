"""The overview: health score and what to do, the funnel, per-channel charts against the
previous period, the outbox and live counters (``/dashboard/live``, Server-Sent Events)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from clarion.domain.types import EventType
from clarion.services.clock import utcnow
from clarion.services.dashboard import DashSession
from clarion.web.dashboard.render import render
from clarion.web.dashboard.session import services_of

CHARTS = (
    ("accepted", "Volume", ""),
    ("delivery_rate", "Delivery rate", ""),
    ("read_rate", "Read rate", ""),
    ("latency_p95_ms", "Delivery latency p95", " ms"),
)
#: How long one live stream lasts before the browser reconnects.
LIVE_SECONDS = 600


def _hour() -> Any:
    return utcnow().replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


async def overview(request: Request, session: DashSession) -> Response:
    services = services_of(request)
    end = _hour()
    start = end - timedelta(hours=24)
    channels = ["all"]

    async def chart(metric: str, channel: str) -> dict[str, Any]:
        filters = {} if channel == "all" else {"channel": channel}
        got = await services.analytics.trends(metric, "hour", start, end, filters)
        return {
            "current": [p["value"] for p in got["points"]],
            "previous": [p["previous"] for p in got["points"]],
        }

    body, status, health = await asyncio.gather(
        services.analytics.dashboard(start, end),
        services.system_status(),
        services.health.score(),
    )
    channels += sorted(body["by_channel"])[:3]
    jobs = [chart(metric, ch) for ch in channels for metric, _, _ in CHARTS]
    series = await asyncio.gather(*jobs)
    charts = []
    for i, ch in enumerate(channels):
        row = []
        for j, (_metric, title, unit) in enumerate(CHARTS):
            row.append({"title": title, "unit": unit, **series[i * len(CHARTS) + j]})
        charts.append({"channel": ch, "charts": row})
    return render(
        request,
        "overview.html",
        session=session,
        active="overview",
        data=body,
        status=status,
        health=health,
        charts=charts,
    )


async def live(request: Request, session: DashSession) -> Response:
    """``counters`` events each second: the events written in that second, by kind."""
    analytics = services_of(request).analytics
    top, _ = await analytics.live_counts(None)

    async def stream() -> AsyncIterator[bytes]:
        nonlocal top
        yield b"retry: 2000\n\n"
        ends = time.monotonic() + LIVE_SECONDS
        while time.monotonic() < ends:
            await asyncio.sleep(1.0)
            if await request.is_disconnected():
                return
            top, counts = await analytics.live_counts(top)
            body = {
                "accepted": counts.get(EventType.ACCEPTED, 0),
                "delivered": counts.get(EventType.DELIVERED, 0) + counts.get(EventType.SENT, 0),
                "failed": counts.get(EventType.FAILED, 0) + counts.get(EventType.DEAD, 0),
                "read": counts.get(EventType.READ, 0),
            }
            yield b"event: counters\ndata: " + json.dumps(body).encode() + b"\n\n"

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
