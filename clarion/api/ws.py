"""The live inbox over WebSocket (``/api/v1/ws``) and Server-Sent Events
(``GET /api/v1/notifications/stream``). The protocol is documented in docs/realtime.md.

Close codes (WebSocket):

====  =======================================================================
4001  unauthenticated: no token, or a bad one (nothing was sent before it)
4002  token expired (at connect, or while connected without a renewal)
4003  forbidden: a server API key cannot open a user stream, or a renewal token is
      for another user
4008  slow consumer: the client did not keep up; reconnect with your cursor
4009  the user already holds ``CLARION_WS_MAX_PER_USER`` live connections here
4029  the client kept sending after ``rate_limited`` error frames
1001  the server is shutting down; reconnect with your cursor
====  =======================================================================

Token renewal: a client sends ``{"type": "auth", "token": "<new token>"}`` while
connected; a valid token for the same user moves the connection's expiry to the new
token's (answered ``ack`` with ``action: "auth"`` and ``expires_at``).

Message rate: a token bucket per connection, ``CLARION_WS_ACTIONS_PER_SECOND`` refilled per
second, holding twice that. A message with the bucket empty is not acted on and gets an
``error`` frame ``rate_limited`` with ``retry_after`` (seconds); it still costs a token, so
a client that keeps sending goes further into debt, and one a whole burst in debt is
closed with 4029. A client that waits ``retry_after`` is never closed.

The Server-Sent Events endpoint is in ``api/sse.py``; the one-write frame writer in
``api/frame_writer.py``.

Liveness is the WebSocket protocol's own ping/pong, which uvicorn runs for every socket
(a ping every 20 s, closed with 1011 when unanswered for 20 s; browsers answer by
themselves). An application-level ``ping`` frame on top of it would cost one more frame,
timer and wake-up per socket for nothing (20,000 idle sockets per process). Clients may
still send ``{"type": "ping"}`` (answered ``pong``) and ``{"type": "pong"}`` (ignored).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.routing import WebSocketRoute
from starlette.types import Receive, Scope, Send

from clarion.api.frame_writer import writable_now, write_at_once, write_frames
from clarion.errors import (
    ClarionError,
    Forbidden,
    TokenExpired,
    Unauthenticated,
)
from clarion.hub.broker import CloseReason, SubscriptionClosed
from clarion.metrics import WS_WRITES
from clarion.services.auth import KEY_PREFIX, Principal
from clarion.services.container import Services
from clarion.services.realtime import LiveStream, frame

log = logging.getLogger("clarion.ws")
router = APIRouter()

CLOSE_UNAUTHENTICATED = 4001
CLOSE_TOKEN_EXPIRED = 4002
CLOSE_FORBIDDEN = 4003
CLOSE_SLOW_CONSUMER = 4008
CLOSE_TOO_MANY_CONNECTIONS = 4009
CLOSE_RATE_LIMITED = 4029
CLOSE_GOING_AWAY = 1001
# What a client over CLARION_WS_MAX_PER_USER is told to wait (SSE: Retry-After).
TOO_MANY_RETRY_AFTER = 10.0
AUTH_TIMEOUT = 10.0
PING_INTERVAL = 25.0  # Server-Sent Events only: keeps proxies from closing an idle stream
CLOSE_TIMEOUT = 30.0
ACTIONS = {"read", "unread", "seen", "archive", "unarchive"}


def _parse_cursor(raw: Any) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except (TypeError, ValueError):
        return None
    return value if 0 <= value < 2**63 else None


def authenticate_user(services: Services, token: str | None) -> tuple[Principal, float]:
    """A user token's principal and expiry; an API key is refused (it is not a user)."""
    if not token:
        raise Unauthenticated("a user token is required")
    if token.startswith(KEY_PREFIX):
        raise Forbidden("an API key cannot open a user stream; mint a user token")
    principal = services.auth.verify_user_token(token)
    return principal, services.auth.token_expiry(token)


async def websocket_endpoint(websocket: WebSocket, send: Send | None = None) -> None:
    services: Services = websocket.app.state.services
    await websocket.accept()
    token = websocket.query_params.get("token")
    cursor = _parse_cursor(websocket.query_params.get("cursor"))
    if token is None:  # the first message may carry it (keeps it out of access logs)
        try:
            first = orjson.loads(await asyncio.wait_for(websocket.receive_text(), AUTH_TIMEOUT))
            token = first.get("token") if isinstance(first, dict) else None
            if isinstance(first, dict) and "cursor" in first:
                cursor = _parse_cursor(first.get("cursor"))
        except (TimeoutError, orjson.JSONDecodeError, WebSocketDisconnect):
            token = None
    try:
        principal, expires_at = authenticate_user(services, token)
    except TokenExpired:
        await websocket.close(CLOSE_TOKEN_EXPIRED, "token expired")
        return
    except Forbidden:
        await websocket.close(CLOSE_FORBIDDEN, "API keys cannot open user streams")
        return
    except Unauthenticated:
        await websocket.close(CLOSE_UNAUTHENTICATED, "unauthenticated")
        return
    assert principal.user_id is not None
    if over_user_limit(services, principal.user_id):
        await websocket.close(CLOSE_TOO_MANY_CONNECTIONS, "too many live connections")
        return
    # No await between the check and the stream's registration (LiveStream.open counts
    # the connection before it first waits), so concurrent opens cannot all pass it.
    await _serve(websocket, send or websocket.send, services, principal, cursor, expires_at)


def over_user_limit(services: Services, user_id: str) -> bool:
    """The user already holds CLARION_WS_MAX_PER_USER live connections on this node."""
    return services.hub.sessions.local_count(user_id) >= services.settings.ws_max_per_user


class _LiveSocketApp:
    """The ASGI app of ``/api/v1/ws``, mounted as a plain Starlette route.

    Why not ``@router.websocket``: FastAPI's route keeps a dependency-solving context
    (exit stacks, their frames) alive for the whole life of every socket, and Starlette's
    session wrapper passes each frame through an exception-tracking ``send``. Neither
    does anything for this endpoint (it takes no dependencies and handles its own
    errors), and with 20,000 sockets per process both show up in memory and CPU."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await websocket_endpoint(WebSocket(scope, receive=receive, send=send), send)


WS_PATH = "/api/v1/ws"
live_socket_app = _LiveSocketApp()
router.routes.append(WebSocketRoute(WS_PATH, live_socket_app, name="websocket_endpoint"))


class _Live:
    """The writing side of one connection. No task waits per idle socket: a writer task
    starts when the stream has something (frames, a close, the token's expiry) and
    ends once it wrote everything. The endpoint's own task is the reader."""

    __slots__ = ("closing", "expired", "send", "stream", "timer", "writer", "ws")

    def __init__(self, ws: WebSocket, send: Send, stream: LiveStream) -> None:
        self.ws = ws
        self.send = send
        self.stream = stream
        self.writer: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.expired = False
        self.closing = False

    def start(self, expires_at: float) -> None:
        """After the first frames went out: live frames from now on (earlier ones stay
        queued until then, so they never overtake the replay)."""
        self.timer = asyncio.get_running_loop().call_later(
            max(0.0, expires_at - time.time()), self._expire
        )
        self.stream.listen(self.kick)
        if self.stream.pending:
            self.kick()

    def _expire(self) -> None:
        self.timer = None
        self.expired = True
        self.kick()

    def renew(self, expires_at: float) -> bool:
        """A renewal token's expiry replaces the current one; ``False`` once the
        connection expired or is closing (too late: the client reconnects)."""
        if self.expired or self.closing:
            return False
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(
            max(0.0, expires_at - time.time()), self._expire
        )
        return True

    def kick(self) -> None:
        if self.writer is not None or self.closing:
            return
        # The common case, handled right here: frames queued for a socket uvicorn can
        # write to now. A writer task per socket and delivery (10,000 tasks for one
        # broadcast) cost more than the write itself; the tasks ran back to back anyway.
        if not self.expired and self.stream.closed is None:
            proto = writable_now(self.send)
            if proto is not None:
                frames = self.stream.take()  # the stream is open: cannot raise
                if frames:
                    try:
                        write_frames(proto, frames)
                    except OSError:
                        return  # the socket went away; its reader sees it too
                    self.stream.observe_sent(frames)
                return
        self.writer = asyncio.create_task(self._write())

    async def stop(self) -> None:
        self.stream.listen(None)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        writer = self.writer
        if writer is not None and writer is not asyncio.current_task():
            writer.cancel()
            with contextlib.suppress(BaseException):
                await writer

    async def _write(self) -> None:
        try:
            while not self.closing:
                try:
                    frames = self.stream.take()
                except SubscriptionClosed as closed:
                    if closed.reason is CloseReason.SLOW_CONSUMER:
                        await self.close(
                            CLOSE_SLOW_CONSUMER, "slow consumer: resume with your cursor"
                        )
                    else:
                        await self.close(CLOSE_GOING_AWAY, "stream closed")
                    return
                if frames:
                    # A client that stopped reading blocks this send once its buffers
                    # are full; an overflow meanwhile shows up as a closed stream next.
                    await self.write(frames)
                    continue
                if self.expired:
                    await self.close(CLOSE_TOKEN_EXPIRED, "token expired")
                return
        except (OSError, RuntimeError, WebSocketDisconnect):
            return  # the socket went away under a send; the reader sees it too
        except Exception as exc:  # a writer must not die silently
            log.warning("live connection writer failed: %r", exc)
        finally:
            self.writer = None

    async def write(self, frames: list[bytes]) -> None:
        # Each frame is one WebSocket text message (the protocol's unit). Through ASGI
        # every message is its own socket write (a syscall); written whole here when the
        # server allows it, else a plain loop straight to the server's ``send``.
        if not write_at_once(self.send, frames):
            send = self.send
            for f in frames:
                await send({"type": "websocket.send", "text": f.decode()})
            WS_WRITES["frames"] += len(frames)
            WS_WRITES["writes"] += len(frames)
        self.stream.observe_sent(frames)

    async def close(self, code: int, reason: str) -> None:
        if self.closing:
            return
        self.closing = True
        with contextlib.suppress(Exception):
            # A stalled client's socket buffers are full: the close frame waits for
            # room. Once it reads again it gets the code after what was in flight; one
            # that never reads is dropped by the server's ping timeout.
            await asyncio.wait_for(self.ws.close(code, reason), CLOSE_TIMEOUT)


async def _serve(
    ws: WebSocket,
    send: Send,
    services: Services,
    principal: Principal,
    cursor: int | None,
    expires_at: float,
) -> None:
    """One connection: this task reads the client's messages; a short-lived writer task
    (``_Live``) pushes frames when there are some. Closing from the server side (slow
    consumer, expiry, shutdown) makes the server queue a disconnect for this reader."""
    assert principal.user_id is not None
    stream = LiveStream(services.realtime, principal.user_id, cursor)
    live = _Live(ws, send, stream)
    # The message bucket (see the module docstring), in this task's locals: nothing is
    # kept per idle socket for it.
    rate = services.settings.ws_actions_per_second
    burst = 2.0 * rate
    tokens, last = burst, time.monotonic()
    try:
        await live.write(await stream.open())
        live.start(expires_at)
        while True:
            message = await ws.receive_text()
            now = time.monotonic()
            tokens = min(burst, tokens + (now - last) * rate) - 1.0
            last = now
            if tokens >= 0:
                try:
                    reply = await _handle_client_message(services, principal, message, live)
                except _CloseNow as close:
                    await live.stop()
                    await live.close(close.code, close.reason)
                    return
            elif tokens < -burst:
                await live.stop()
                await live.close(CLOSE_RATE_LIMITED, "too many messages")
                return
            else:
                reply = frame(
                    "error",
                    time.time(),
                    code="rate_limited",
                    message=f"more than {rate:g} messages per second; this one was ignored",
                    retry_after=round((1.0 - tokens) / rate, 3),
                )
            if reply is not None and not live.closing:
                await send({"type": "websocket.send", "text": reply.decode()})
    except (WebSocketDisconnect, OSError, RuntimeError):
        pass  # the client left, or the writer closed the socket
    except asyncio.CancelledError:
        await live.stop()
        await live.close(CLOSE_GOING_AWAY, "server shutting down")
        raise
    finally:
        await live.stop()
        await stream.close()


class _CloseNow(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


async def _handle_client_message(
    services: Services, principal: Principal, raw: str, live: _Live
) -> bytes | None:
    """``pong``, ``ping``, ``auth`` (a renewal), or an inbox action
    ``{"type": "read", "id": 12}``."""
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return frame("error", time.time(), code="malformed_json", message="not JSON")
    if not isinstance(message, dict):
        return frame("error", time.time(), code="validation_failed", message="not an object")
    kind = message.get("type")
    if kind == "pong":  # answers to the pings older servers sent; nothing to do
        return None
    if kind == "ping":
        return frame("pong", time.time())
    if kind == "auth":
        return _renew(services, principal, message.get("token"), live)
    if kind in ACTIONS:
        nid = message.get("id")
        if not isinstance(nid, int) or isinstance(nid, bool) or not 0 < nid < 2**63:
            return frame(
                "error",
                time.time(),
                code="validation_failed",
                message="id must be a notification id",
                request=message,
            )
        try:
            await services.inbox.apply(principal, nid, kind)
        except ClarionError as exc:
            return frame("error", time.time(), code=exc.code, message=exc.message, id=nid)
        return frame("ack", time.time(), action=kind, id=nid)
    return frame(
        "error", time.time(), code="validation_failed", message=f"unknown message type {kind!r}"
    )


def _renew(services: Services, principal: Principal, token: Any, live: _Live) -> bytes | None:
    """A renewal: a refused token leaves the connection as it was (it still ends at the
    current token's expiry); a token for another user closes it (4003), since the client
    meant to act as someone this connection does not serve."""
    if not isinstance(token, str) or not token:
        return frame("error", time.time(), code="validation_failed", message="auth needs a token")
    try:
        renewed, expires_at = authenticate_user(services, token)
    except ClarionError as exc:  # expired, invalid, or an API key
        return frame("error", time.time(), code=exc.code, message=exc.message)
    if renewed.user_id != principal.user_id:
        raise _CloseNow(CLOSE_FORBIDDEN, "the renewal token is for another user")
    if not live.renew(expires_at):
        return None  # expired meanwhile: the 4002 close is on its way
    return frame("ack", time.time(), action="auth", expires_at=expires_at)


# --- Server-Sent Events ----------------------------------------------------------------
