"""``/api/v1/notifications/analytics/...``: the dashboard, a user's metrics, the health
score, trends, the raw event export and live counters; and the two conversion reports.
Analytics reads need an API key with the ``read`` scope (a user token gets 403);
conversions need ``send``. docs/analytics.md defines every figure."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import StreamingResponse

from clarion.api.deps import ServerDep, ServicesDep
from clarion.api.responses import Json
from clarion.api.routes import ERROR_RESPONSES
from clarion.api.schemas import MAX_ID, Strict, TypeName, UserId
from clarion.domain.types import ChannelName, EventType
from clarion.errors import ValidationFailed
from clarion.services.analytics import INTERVALS, METRICS, resolve_range
from clarion.services.clock import utcnow

router = APIRouter(tags=["analytics"], responses=ERROR_RESPONSES)
_A = "/api/v1/notifications/analytics"

From = Annotated[str | None, Query(alias="from", max_length=40, description="ISO 8601 time")]
To = Annotated[str | None, Query(max_length=40, description="ISO 8601 time; default now")]
Channel = Annotated[ChannelName | None, Query()]
NotificationType = Annotated[TypeName | None, Query()]


@router.get(f"{_A}/dashboard")
async def dashboard(
    services: ServicesDep, _server: ServerDep, start: From = None, to: To = None
) -> Json:
    """Totals and rates, the funnel (overall and per channel), figures by channel, type
    and template, latency percentiles, the top failure and suppression reasons, the
    outbox, live connections, dependencies and the health score. Default: the last 24 h."""
    lo, hi = resolve_range(start, to, utcnow(), default=timedelta(hours=24))
    # The range's figures read now; the outbox, connections, dependencies and the health
    # score as computed at most a second ago (up to three seconds while the next one is
    # computed in the background): they do not depend on the range, and a screen polling
    # the dashboard should not read them again on every request.
    body, status, health = await asyncio.gather(
        services.analytics.dashboard(lo, hi),
        services.recent_status.get(),
        services.health.score(),
    )
    backlog = next(c for c in health["components"] if c["name"] == "backlog_age")
    body["outbox"] = {**status["outbox"], "oldest_due_age_seconds": backlog["figure"]}
    body["live_connections"] = status["connections"]["total"]
    redis = status["redis"]
    body["dependencies"] = {
        "status": status["status"],
        "reasons": status["reasons"],
        "database": status["database"].get("status"),
        "redis": None if redis is None else ("ok" if redis["healthy"] else "down"),
        "broker": status["broker"]["active_transport"],
    }
    body["health"] = {"score": health["score"], "worst_window": health["worst_window"]}
    return Json(body)


@router.get(f"{_A}/metrics/{{user_id}}")
async def user_metrics(
    user_id: Annotated[UserId, Path()],
    services: ServicesDep,
    _server: ServerDep,
    start: From = None,
    to: To = None,
) -> Json:
    """What this user received and did (default: the last 30 days, within the raw
    events' retention), with an engagement score."""
    now = utcnow()
    lo, hi = resolve_range(
        start,
        to,
        now,
        default=timedelta(days=30),
        not_before=services.analytics.retention_start(now) - timedelta(hours=1),
    )
    return Json(await services.analytics.user_metrics(user_id, lo, hi))


@router.get(f"{_A}/health-score")
async def health_score(
    services: ServicesDep,
    _server: ServerDep,
    window: Annotated[Literal["1h", "24h", "7d"] | None, Query()] = None,
) -> Json:
    """0-100 with every component (weight, figure, target, advice); the worst of the
    1 h, 24 h and 7 d windows sets it, or ``window`` alone."""
    return Json(await services.health.score(window))


@router.get(f"{_A}/trends")
async def trends(
    services: ServicesDep,
    _server: ServerDep,
    metric: Annotated[str, Query(max_length=40)],
    interval: Annotated[str, Query(max_length=10)] = "hour",
    start: From = None,
    to: To = None,
    type: NotificationType = None,
    channel: Channel = None,
) -> Json:
    """A series with the previous period beside it and anomalies flagged."""
    if metric not in METRICS:
        raise ValidationFailed(
            f"unknown metric {metric!r}",
            [{"field": "metric", "problem": f"one of {', '.join(METRICS)}"}],
        )
    if interval not in INTERVALS:
        raise ValidationFailed(
            f"unknown interval {interval!r}",
            [{"field": "interval", "problem": "hour or day"}],
        )
    step = INTERVALS[interval]
    default = timedelta(hours=24) if interval == "hour" else timedelta(days=30)
    lo, hi = resolve_range(start, to, utcnow(), default=default, grain=step)
    if (hi - lo) / step > 2000:
        raise ValidationFailed(
            "too many points", [{"field": "interval", "problem": "at most 2,000 points"}]
        )
    filters = {"ntype": type, "channel": None if channel is None else str(channel)}
    return Json(await services.analytics.trends(metric, interval, lo, hi, filters))


@router.get(
    f"{_A}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}, "text/csv": {}}}},
)
async def export_events(
    services: ServicesDep,
    _server: ServerDep,
    start: From = None,
    to: To = None,
    format: Annotated[Literal["ndjson", "csv"], Query()] = "ndjson",
    event: Annotated[EventType | None, Query()] = None,
    type: NotificationType = None,
    channel: Channel = None,
    user_id: Annotated[UserId | None, Query()] = None,
) -> StreamingResponse:
    """Raw events in time order, streamed (default: the last 24 h, within retention)."""
    now = utcnow()
    lo, hi = resolve_range(
        start,
        to,
        now,
        default=timedelta(hours=24),
        not_before=services.analytics.retention_start(now) - timedelta(hours=1),
    )
    filters = {
        "type": None if event is None else str(event),
        "ntype": type,
        "channel": None if channel is None else str(channel),
        "user_id": user_id,
    }
    media = "application/x-ndjson" if format == "ndjson" else "text/csv"
    return StreamingResponse(
        services.analytics.export(lo, hi, filters, format),
        media_type=media,
        headers={
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="clarion-events.{format}"',
        },
    )


@router.get(
    f"{_A}/live",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def live(
    request: Request,
    services: ServicesDep,
    _server: ServerDep,
    seconds: Annotated[int, Query(ge=1, le=3600)] = 3600,
) -> StreamingResponse:
    """Server-Sent Events: one ``counters`` event a second with the events written in
    that second (accepted, delivered, failed, read, and every kind), for ``seconds``."""
    top, _ = await services.analytics.live_counts(None)

    async def stream() -> AsyncIterator[bytes]:
        nonlocal top
        yield b"retry: 2000\n\n"
        ends = time.monotonic() + seconds
        while time.monotonic() < ends:
            await asyncio.sleep(1.0)
            if await request.is_disconnected():
                return
            top, counts = await services.analytics.live_counts(top)
            body = {
                "at": utcnow().isoformat(),
                "accepted": counts.get(EventType.ACCEPTED, 0),
                "delivered": counts.get(EventType.DELIVERED, 0) + counts.get(EventType.SENT, 0),
                "failed": counts.get(EventType.FAILED, 0) + counts.get(EventType.DEAD, 0),
                "read": counts.get(EventType.READ, 0),
                "by_event": counts,
            }
            yield b"event: counters\ndata: " + orjson.dumps(body) + b"\n\n"

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


# --- conversions ------------------------------------------------------------------------------
class ConversionIn(Strict):
    name: (
        Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:\-]+$")] | None
    ) = None
    value: Annotated[float, Field(ge=-1e12, le=1e12, allow_inf_nan=False)] | None = None


class ConversionOut(BaseModel):
    notification_id: int | None
    user_id: str
    name: str
    value: float | None
    created_at: str
    attributed: bool


@router.post(
    "/api/v1/notifications/{notification_id:int}/conversions",
    response_model=ConversionOut,
    status_code=201,
    tags=["analytics"],
)
async def notification_conversion(
    notification_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    body: ConversionIn,
    services: ServicesDep,
    _server: ServerDep,
) -> Json:
    """The notification led to the outcome it was sent for. Once per (notification,
    name): repeating it answers 200 with the conversion first recorded."""
    out, new = await services.conversions.for_notification(notification_id, body.name, body.value)
    return Json(out, status_code=201 if new else 200)


@router.post(
    "/api/v1/users/{user_id}/conversions",
    response_model=ConversionOut,
    status_code=201,
    tags=["analytics"],
)
async def user_conversion(
    user_id: Annotated[UserId, Path()],
    body: ConversionIn,
    services: ServicesDep,
    _server: ServerDep,
) -> Json:
    """The user converted: credited to the latest notification the user was sent within
    ``CLARION_CONVERSION_WINDOW_HOURS`` (``attributed``), else kept uncredited."""
    out, new = await services.conversions.for_user(user_id, body.name, body.value)
    return Json(out, status_code=201 if new else 200)
