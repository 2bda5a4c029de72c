"""Users: find one, then their profile, inbox as they see it, preferences, engagement
over the last 30 days, and "send a test notification"."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from clarion.domain.send_command import SendCommand
from clarion.domain.types import ChannelName
from clarion.errors import NotFound, ValidationFailed
from clarion.services.clock import utcnow
from clarion.services.dashboard import DashSession
from clarion.web.dashboard.render import render
from clarion.web.dashboard.session import services_of


async def find(request: Request, session: DashSession) -> Response:
    user_id = (request.query_params.get("user_id") or "").strip()
    if user_id:
        return RedirectResponse(f"/dashboard/users/{quote(user_id, safe='')}", status_code=303)
    return render(request, "users.html", session=session, active="users")


async def user(request: Request, session: DashSession) -> Response:
    services = services_of(request)
    user_id = request.path_params["user_id"]
    now = utcnow()
    try:
        profile = await services.users.get(user_id)
    except NotFound:
        profile = None
    inbox, prefs, metrics, counts = await asyncio.gather(
        services.inbox.page(user_id, limit=20),
        services.preferences.get_preferences(user_id),
        services.analytics.user_metrics(user_id, now - timedelta(days=30), now),
        services.inbox.counts(user_id),
    )
    return render(
        request,
        "user.html",
        session=session,
        active="users",
        user_id=user_id,
        profile=profile,
        inbox=inbox["items"],
        counts=counts,
        prefs=prefs.to_json(),
        metrics=metrics,
        channels=[c.value for c in ChannelName],
        sent=request.query_params.get("sent"),
    )


async def send_test(request: Request, session: DashSession) -> Response:
    services = services_of(request)
    user_id = request.path_params["user_id"]
    form: dict[str, str] = request.state.form
    title = (form.get("title") or "Test notification").strip()[:200]
    try:
        channel = ChannelName(form.get("channel") or "in_app")
    except ValueError as exc:
        raise ValidationFailed("unknown channel", [{"field": "channel"}]) from exc
    cmd = SendCommand(
        user_ids=(user_id,),
        type="dashboard.test",
        title=title,
        message=form.get("message", "")[:2000],
        channels=(channel,),
    )
    accepted = await services.sending.send(cmd)
    await services.dashboard.audit(
        api_key_id=session.api_key_id,
        via="dashboard",
        action="notification.test_send",
        target=f"user:{user_id}",
        after={"title": title, "channel": channel.value, "response": accepted.body},
    )
    ids = accepted.body.get("ids") or []
    sent = ids[0] if ids else "held"
    return RedirectResponse(
        f"/dashboard/users/{quote(user_id, safe='')}?sent={sent}", status_code=303
    )
