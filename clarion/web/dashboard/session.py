"""Who is looking: the session cookie (HttpOnly, SameSite=Strict, Secure behind https),
the read-only rule and the CSRF check of every state-changing form."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from clarion.errors import Unauthenticated, ValidationFailed
from clarion.services.container import Services
from clarion.services.dashboard import SESSION_TTL, DashSession

COOKIE = "clarion_dashboard"
MAX_FORM = 256 * 1024

View = Callable[[Request, DashSession], Awaitable[Response]]


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def is_https(request: Request) -> bool:
    """Behind a proxy ``X-Forwarded-Proto`` tells; else the request's own scheme."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return (forwarded or request.url.scheme) == "https"


def set_session_cookie(response: Response, request: Request, value: str) -> None:
    response.set_cookie(
        COOKIE,
        value,
        max_age=int(SESSION_TTL.total_seconds()),
        path="/dashboard",
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE, path="/dashboard", httponly=True, samesite="strict", secure=is_https(request)
    )


async def form_of(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (the last value of each)."""
    body = await request.body()
    if len(body) > MAX_FORM:
        raise ValidationFailed("the form is too large", [{"field": "body"}])
    try:
        text = body.decode()
    except UnicodeDecodeError as exc:
        raise ValidationFailed("the form is not UTF-8", [{"field": "body"}]) from exc
    return {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}


def server_timing(seconds: float) -> str:
    """The ``Server-Timing`` value of a page: the app's time to answer it (session check,
    reads and rendering; not the network, nor a streamed body's later parts)."""
    return f'app;dur={seconds * 1000:.1f};desc="dashboard"'


def guarded(view: View, *, write: bool = True) -> Callable[[Request], Awaitable[Response]]:
    """A page behind the session. GET without one goes to the sign-in form; POST needs
    this session's CSRF token (``csrf`` form field) and, when it changes anything
    (``write``), an admin session. Every answer carries ``Server-Timing``."""

    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        response = await checked(request)
        response.headers["Server-Timing"] = server_timing(time.perf_counter() - started)
        return response

    async def checked(request: Request) -> Response:
        services = services_of(request)
        try:
            session = await services.dashboard.session(request.cookies.get(COOKIE))
        except Unauthenticated:
            if request.method != "GET":
                raise
            target = quote(
                request.url.path + (f"?{request.url.query}" if request.url.query else "")
            )
            return RedirectResponse(f"/dashboard/login?next={target}", status_code=303)
        if request.method == "POST":
            form = await form_of(request)
            session.check_csrf(form.get("csrf"))
            if write:
                session.require_admin()
            request.state.form = form
        return await view(request, session)

    return endpoint
