"""Sign in with an API key (once), sign out (the session is revoked server-side)."""

from __future__ import annotations

import hmac
import secrets

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from clarion.errors import ClarionError, CsrfFailed
from clarion.services.dashboard import DashSession
from clarion.web.dashboard.render import render
from clarion.web.dashboard.session import (
    COOKIE,
    clear_session_cookie,
    form_of,
    is_https,
    services_of,
    set_session_cookie,
)

#: Double-submit token of the sign-in form (there is no session yet to hold one).
LOGIN_COOKIE = "clarion_dashboard_login"


def _next(value: str | None) -> str:
    """Only a path inside the dashboard (no open redirect)."""
    if value and value.startswith("/dashboard") and not value.startswith("//"):
        return value
    return "/dashboard"


def _form(request: Request, error: str | None = None, status: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        status,
        csrf=token,
        error=error,
        next=_next(request.query_params.get("next")),
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=3600,
        path="/dashboard",
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )
    return response


async def login_form(request: Request) -> Response:
    return _form(request)


async def login(request: Request) -> Response:
    form = await form_of(request)
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    sent = form.get("csrf", "")
    if not cookie or not hmac.compare_digest(cookie, sent):
        raise CsrfFailed("the sign-in form lacks its CSRF token: reload the page")
    try:
        session_id, _ = await services_of(request).dashboard.sign_in(form.get("key", ""))
    except ClarionError as exc:
        if exc.status not in (401, 403):
            raise
        return _form(request, exc.message, exc.status)
    response = RedirectResponse(_next(form.get("next")), status_code=303)
    set_session_cookie(response, request, session_id)
    response.delete_cookie(LOGIN_COOKIE, path="/dashboard")
    return response


async def logout(request: Request, session: DashSession) -> Response:
    """Any session may end itself (a read-only one too): see routes.py."""
    await services_of(request).dashboard.sign_out(request.cookies.get(COOKIE, ""))
    response = RedirectResponse("/dashboard/login", status_code=303)
    clear_session_cookie(response, request)
    return response
