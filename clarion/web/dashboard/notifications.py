"""Notifications: search across users, and one notification's whole story."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from clarion.errors import ValidationFailed
from clarion.services.analytics import parse_time
from clarion.services.dashboard import DashSession
from clarion.web.dashboard.render import render
from clarion.web.dashboard.session import services_of

FIELDS = ("user_id", "type", "status", "channel", "start", "end")
STATUSES = ("pending", "scheduled", "sending", "failed", "delivered", "dead", "suppressed")


def _int(value: str | None, field: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise ValidationFailed(f"{field} must be a whole number", [{"field": field}]) from exc


def search_filters(request: Request) -> dict[str, Any]:
    q = request.query_params
    got: dict[str, Any] = {k: q.get(k) or None for k in FIELDS}
    got["start"] = parse_time(got["start"], "start")
    got["end"] = parse_time(got["end"], "end")
    if got["status"] and got["status"] not in STATUSES:
        raise ValidationFailed("unknown status", [{"field": "status", "problem": "unknown"}])
    return got


async def search(request: Request, session: DashSession) -> Response:
    filters = search_filters(request)
    before = _int(request.query_params.get("before"), "before")
    rows = await services_of(request).dashboard_reads.search(filters, before, 50)
    next_before = rows[-1]["id"] if len(rows) == 50 else None
    query = {k: request.query_params.get(k, "") for k in FIELDS}
    return render(
        request,
        "notifications.html",
        session=session,
        active="notifications",
        rows=rows,
        query=query,
        statuses=STATUSES,
        next_before=next_before,
    )


async def story(request: Request, session: DashSession) -> Response:
    notification_id = _int(request.path_params["id"], "id")
    assert notification_id is not None
    got = await services_of(request).dashboard_reads.story(notification_id)
    return render(request, "story.html", session=session, active="notifications", **got)
