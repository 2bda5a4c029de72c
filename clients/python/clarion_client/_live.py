"""``AsyncClient.live``: a user's inbox as it changes, over the WebSocket, resumed after
every disconnect from the newest notification seen (docs/realtime.md, "Resume without
gaps"): the server replays what was missed, oldest first, without duplicates."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any

from clarion_client._core import RetryPolicy
from clarion_client._websocket import HandshakeError, WebSocket, WebSocketClosed
from clarion_client.errors import LiveConnectionError, TokenExpiredError
from clarion_client.models import LiveEvent

#: Close codes a reconnect cannot cure: a bad token, a credential that may not open the
#: stream, a client that ignored its rate limit.
FATAL_CLOSES = {4001: "unauthenticated", 4003: "forbidden", 4029: "rate_limited"}
TOKEN_EXPIRED = 4002

TokenSource = Callable[[], Awaitable[str]]


class LiveStream:
    """``async for event in stream``: every frame as a :class:`LiveEvent`. ``cursor`` is
    the id of the newest notification received; a reconnect resumes after it. When the
    token expires, ``renew_token`` (if given) is awaited for a new one and the stream
    goes on; without it, :class:`TokenExpiredError` ends the loop."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        cursor: int | None = None,
        renew_token: TokenSource | None = None,
        retry: RetryPolicy | None = None,
        max_reconnects: int | None = None,
        open_timeout: float = 30.0,
    ) -> None:
        scheme, _, rest = base_url.partition("://")
        ws_scheme = "wss" if scheme == "https" else "ws"
        self._url = f"{ws_scheme}://{rest.rstrip('/')}/api/v1/ws"
        self._token = token
        self.cursor = cursor
        self._renew = renew_token
        self._retry = retry or RetryPolicy()
        self._max_reconnects = max_reconnects
        self._open_timeout = open_timeout
        self._ws: WebSocket | None = None
        self.reconnects = 0

    def _connect_url(self) -> str:
        return self._url + (f"?cursor={self.cursor}" if self.cursor is not None else "")

    async def send(self, message: dict[str, Any]) -> None:
        """Send an action on the open socket: ``{"type": "read", "id": 42}``."""
        if self._ws is None:
            raise LiveConnectionError("the live stream is not connected")
        await self._ws.send_text(json.dumps(message))

    async def __aiter__(self) -> AsyncIterator[LiveEvent]:
        failures = 0
        while True:
            try:
                self._ws = await WebSocket.connect(self._connect_url(), within=self._open_timeout)
                await self._ws.send_text(json.dumps({"type": "auth", "token": self._token}))
                while True:
                    frame = LiveEvent.model_validate_json(await self._ws.recv())
                    failures = 0
                    if frame.type == "notification.created" and frame.id is not None:
                        self.cursor = max(self.cursor or 0, frame.id)
                    yield frame
            except WebSocketClosed as closed:
                await self._renew_or_raise(closed)
            except HandshakeError as exc:
                if exc.status < 500 and exc.status not in (408, 429):
                    raise LiveConnectionError(str(exc), status=exc.status) from exc
            except (TimeoutError, OSError, EOFError, asyncio.IncompleteReadError):
                pass  # the connection broke: resume from the cursor
            finally:
                await self.aclose()
            failures += 1
            self.reconnects += 1
            if self._max_reconnects is not None and self.reconnects > self._max_reconnects:
                raise LiveConnectionError("the live stream could not be kept open")
            await asyncio.sleep(self._retry.delay(min(failures, 10), None, random.random))

    async def _renew_or_raise(self, closed: WebSocketClosed) -> None:
        if closed.code in FATAL_CLOSES:
            raise LiveConnectionError(
                f"live stream closed: {closed.code} {closed.reason}".strip(),
                code=FATAL_CLOSES[closed.code],
                status=closed.code,
            ) from closed
        if closed.code == TOKEN_EXPIRED:
            if self._renew is None:
                raise TokenExpiredError(
                    "the user token expired", code="token_expired", status=closed.code
                ) from closed
            self._token = await self._renew()

    async def aclose(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()

    async def __aenter__(self) -> LiveStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
