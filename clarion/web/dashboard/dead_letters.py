"""Dead letters: filter, inspect, retry one or all matching (the delivery service's
retry, as ``POST /api/v1/deliveries/{id}/retry``), with the outcome shown."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from clarion.services.dashboard import DashSession
from clarion.web.dashboard.render import render
from clarion.web.dashboard.session import services_of

FIELDS = ("channel", "user_id", "reason")
#: The most one "retry all matching" re-queues.
RETRY_ALL_LIMIT = 1000


def _filters(source: Any) -> dict[str, str | None]:
    return {k: (source.get(k) or None) for k in FIELDS}


async def dead_letters(request: Request, session: DashSession) -> Response:
    filters = _filters(request.query_params)
    rows = await services_of(request).dashboard_reads.dead_letters(filters, 200)
    q = request.query_params
    outcome = {"retried": q.get("retried"), "failed": q.get("failed")}
    return render(
        request,
        "dead.html",
        session=session,
        active="dead",
        rows=rows,
        query={k: v or "" for k, v in filters.items()},
        outcome=outcome if outcome["retried"] is not None else None,
    )


async def retry(request: Request, session: DashSession) -> Response:
    """Form fields: ``delivery_id`` (one), or ``all`` with the filters."""
    services = services_of(request)
    form: dict[str, str] = request.state.form
    filters = _filters(form)
    if form.get("delivery_id"):
        ids = [form["delivery_id"]]
    else:
        rows = await services.dashboard_reads.dead_letters(filters, RETRY_ALL_LIMIT)
        ids = [r["id"] for r in rows]
    got = await services.dashboard_reads.retry(ids)
    for done in got["retried"]:
        await services.dashboard.audit(
            api_key_id=session.api_key_id,
            via="dashboard",
            action="delivery.retry",
            target=f"delivery:{done['id']}",
            before=done["before"],
            after=done["after"],
        )
    back = {k: v for k, v in filters.items() if v}
    back.update(retried=str(len(got["retried"])), failed=str(len(got["failed"])))
    return RedirectResponse(f"/dashboard/dead-letters?{urlencode(back)}", status_code=303)
