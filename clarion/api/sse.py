"""The live inbox as Server-Sent Events (``GET /api/v1/notifications/stream``), for
clients that cannot use WebSockets: the same frames as ``/api/v1/ws`` (docs/realtime.md),
one ``event:`` per frame, ``id:`` on each created notification so that the browser's
``Last-Event-ID`` resumes where it stopped. Ended at the token's expiry with
``event: token_expired``; reopen with a new token."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import orjson
from fastapi import APIRouter, Header, Query, Request
from starlette.responses import StreamingResponse

from clarion.api.routes import ERROR_RESPONSES
from clarion.api.ws import (
    PING_INTERVAL,
    TOO_MANY_RETRY_AFTER,
    _parse_cursor,
    authenticate_user,
    over_user_limit,
)
from clarion.errors import TooManyLiveConnections
from clarion.hub.broker import SubscriptionClosed
from clarion.services.container import Services
from clarion.services.realtime import LiveStream, frame

router = APIRouter()


@router.get(
    "/api/v1/notifications/stream",
    tags=["notifications"],
    responses={
        **ERROR_RESPONSES,
        200: {"content": {"text/event-stream": {}}, "description": "An event stream"},
    },
    response_class=StreamingResponse,
)
async def event_stream(
    request: Request,
    token: str | None = Query(default=None, max_length=4096),
    cursor: str | None = Query(default=None, max_length=20),
    authorization: str | None = Header(default=None, max_length=4096),
    last_event_id: str | None = Header(default=None, max_length=20),
) -> StreamingResponse:
    """The live inbox for clients that cannot use WebSockets. Authenticate with a user
    token (``Authorization: Bearer`` or ``?token=`` for EventSource); resume with
    ``Last-Event-ID`` or ``?cursor=``."""
    services: Services = request.app.state.services
    if token is None and authorization and authorization.lower().startswith("bearer "):
        token = authorization[7:].strip()
    principal, expires_at = authenticate_user(services, token)
    assert principal.user_id is not None
    if over_user_limit(services, principal.user_id):
        raise TooManyLiveConnections(
            f"this user already holds {services.settings.ws_max_per_user} live connections "
            "on this server; close one first",
            retry_after=TOO_MANY_RETRY_AFTER,
        )
    resume = _parse_cursor(last_event_id)
    if resume is None:
        resume = _parse_cursor(cursor)
    stream = LiveStream(services.realtime, principal.user_id, resume)

    async def events() -> AsyncIterator[bytes]:
        try:
            frames = await stream.open()
            yield b"retry: 2000\n\n"
            while True:
                for f in frames:
                    yield _sse(f)
                stream.observe_sent(frames)
                remaining = expires_at - time.time()
                if remaining <= 0:
                    yield b"event: token_expired\ndata: {}\n\n"
                    return
                try:
                    frames = await asyncio.wait_for(
                        stream.next_frames(), min(PING_INTERVAL, remaining)
                    )
                except TimeoutError:
                    frames = [frame("ping", time.time())]
                except SubscriptionClosed:
                    yield b'event: closed\ndata: {"reason": "resume with your cursor"}\n\n'
                    return
        finally:
            await stream.close()

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _sse(data: bytes) -> bytes:
    event = orjson.loads(data)
    kind = event.get("type", "message")
    head = f"event: {kind}\n"
    if kind == "notification.created":
        head += f"id: {event['id']}\n"
    return head.encode() + b"data: " + data + b"\n\n"
