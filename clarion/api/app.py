"""The FastAPI application factory. Nothing is built at import time: ``create_app`` takes
Settings (and optionally ready Services, for tests) and wires everything."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Protocol

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import Receive, Scope, Send

from clarion import gc_tuning
from clarion.api import docs_ui, errors, openapi_links, sse, ws
from clarion.api.audit import AdminAudit
from clarion.api.fastpath import HotPaths
from clarion.api.inputguard import InputGuard
from clarion.api.middleware import BodyLimit, Metrics
from clarion.api.responses import Json
from clarion.api.routes import (
    actions,
    analytics,
    batches,
    batching,
    deliveries,
    experiments,
    health,
    notifications,
    preferences,
    push,
    scheduled,
    system,
    templates,
    unsubscribe,
    users,
    webhooks,
)
from clarion.config import Settings
from clarion.services.container import Services


class ClarionApp(FastAPI):
    """The FastAPI app, with live sockets handed straight to their endpoint.

    Why: everything between the server and a route (Starlette's error and exception
    middleware, FastAPI's, the router) stays on the stack for as long as a WebSocket is
    open, and the exception middleware wraps ``send``. For ``/api/v1/ws`` none of it does
    anything (the endpoint handles its own errors and takes no dependencies), while with
    20,000 sockets per process its frames cost memory, and the wrapped ``send`` kept every
    frame from going out in one socket write with the others (api/frame_writer.write_frames).
    Behind a ``root_path`` the socket takes the normal route."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A coroutine function, so that servers detect an ASGI 3 app (uvicorn checks).
        if (
            scope["type"] == "websocket"
            and scope["path"] == ws.WS_PATH
            and not scope.get("root_path")
        ):
            scope["app"] = self  # as Starlette sets it: the endpoint reads app.state
            await ws.live_socket_app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


class Runtime(Protocol):
    """What a process runs the app on (clarion/runtime.py builds the real one): the
    services, started before the first request and closed after the last."""

    services: Services

    async def start(self) -> None: ...

    async def close(self) -> None: ...


def create_app(
    settings: Settings,
    services: Services | None = None,
    *,
    runtime: Callable[[], Runtime] | None = None,
) -> FastAPI:
    """The HTTP app. With ``services`` (tests, benchmarks) the caller starts and closes
    them; otherwise the lifespan builds ``runtime()`` (or bare services) on the serving
    event loop, starts it, and closes it at shutdown."""
    owned = services is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not owned:
            app.state.services = services
            yield
            return
        rt = runtime() if runtime is not None else _BareServices(Services(settings))
        app.state.services = rt.services
        await rt.start()
        gc_tuning.settle()  # a process of its own (clarion serve): see clarion/gc_tuning.py
        try:
            yield
        finally:
            await rt.close()

    app = ClarionApp(
        title="Clarion",
        version="0.1.0",
        description="Self-hosted notification service. Authenticate with "
        "`Authorization: Bearer <API key or user token>`.",
        default_response_class=Json,
        lifespan=lifespan,
        # Served by docs_ui from local assets: the defaults load their scripts from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    if services is not None:
        app.state.services = services
    errors.install(app)
    docs_ui.install(app)
    openapi_links.install(app)
    # Literal paths under /notifications (preferences, batching, batches, scheduled) before
    # /{notification_id}.
    app.include_router(ws.router)
    app.include_router(sse.router)
    app.include_router(system.router)
    app.include_router(analytics.router)
    app.include_router(experiments.router)
    app.include_router(preferences.router)
    app.include_router(batching.router)
    app.include_router(batches.router)
    app.include_router(scheduled.router)
    app.include_router(notifications.router)
    app.include_router(actions.router)
    app.include_router(templates.router)
    app.include_router(users.router)
    app.include_router(deliveries.router)
    app.include_router(webhooks.router)
    app.include_router(push.router)
    app.include_router(unsubscribe.router)
    app.include_router(health.router)
    # Innermost: the audit of admin operations (api/audit.py).
    app.add_middleware(AdminAudit)
    # Then JSON limits and parameter characters, for every route (the hot send
    # checks the same itself).
    app.add_middleware(InputGuard, max_json_depth=settings.max_json_depth)
    # The hot reads it answers are still limited, counted and timed.
    app.add_middleware(HotPaths)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(Metrics)
    if settings.cors_origins:  # outermost: preflights are answered before anything else
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=[
                "Retry-After",
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
                "Idempotent-Replayed",
            ],
            max_age=600,
        )
    return app


class _BareServices:
    """The services alone, no delivery worker: an app built without a runtime."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def start(self) -> None:
        await self.services.start()

    async def close(self) -> None:
        await self.services.close()
