"""Users: the list (by id prefix, paged by cursor), then one user's profile, inbox as
they see it, preferences, engagement over the last 30 days, "send a test notification",
and erasing the user (admin only, behind a confirmation that names the user)."""

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

#: Users per page of the list.
PAGE = 50


async def find(request: Request, session: DashSession) -> Response:
    q = request.query_params
    user_id = (q.get("user_id") or "").strip()
    if user_id:
        return RedirectResponse(f"/dashboard/users/{quote(user_id, safe='')}", status_code=303)
    prefix = (q.get("prefix") or "").strip()[:255]
    after = q.get("after") or None
    rows = await services_of(request).dashboard_reads.users(prefix or None, after, PAGE)
    return render(
        request,
        "users.html",
        session=session,
        active="users",
        rows=rows,
        prefix=prefix,
        next_after=rows[-1]["user_id"] if len(rows) == PAGE else None,
        erased=q.get("erased"),
    )


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


async def erase_form(request: Request, session: DashSession) -> Response:
    """The confirmation page: only an admin session gets it (the POST checks again)."""
    session.require_admin()
    user_id = request.path_params["user_id"]
    held = await services_of(request).privacy.held(user_id)
    return render(
        request, "erase.html", session=session, active="users", user_id=user_id, held=held
    )


async def erase(request: Request, session: DashSession) -> Response:
    """Erase the user (the privacy service's erasure, as ``DELETE /api/v1/users/{id}``)
    once the form repeats the user's id."""
    services = services_of(request)
    user_id = request.path_params["user_id"]
    form: dict[str, str] = request.state.form
    if form.get("confirm", "") != user_id:
        raise ValidationFailed(
            "type the user's id to confirm the erasure",
            [{"field": "confirm", "problem": "must equal the user id"}],
        )
    before = await services.privacy.held(user_id)
    done = await services.privacy.erase(user_id)
    await services.dashboard.audit(
        api_key_id=session.api_key_id,
        via="dashboard",
        action="user.erase",
        target=f"user:{user_id}",
        before=before,
        after={
            "pseudonym": done.pseudonym,
            "rows": dict(done.rows),
            "transactions": done.transactions,
        },
    )
    return RedirectResponse(f"/dashboard/users?erased={done.pseudonym}", status_code=303)
