"""uvicorn's WebSocket protocol, keeping less for every open socket.

Why: ``clarion serve`` holds 20,000 idle WebSockets per process (bench S4), so what each
one keeps is multiplied 20,000 times. uvicorn's protocol object keeps, for the life of
the socket, the handshake's request and response (their header objects: ~3 KB) and an
``asyncio.Queue`` for received messages (three deques and an Event: ~2.4 KB), and the
scope keeps the raw headers (~1.2 KB). Once the handshake is answered none of the headers
are read again, and a socket has exactly one reader, so a list and one future do the
queue's job. tracemalloc over 1,000 sockets: 22.7 -> 14.1 KB of Python heap per socket.

Everything else is uvicorn's own code: the handshake, framing, flow control, ping/pong
and closing. ``clarion serve`` selects this class with uvicorn's ``ws`` option.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class ReceiveQueue:
    """The part of ``asyncio.Queue`` uvicorn uses for received messages (``put_nowait``,
    ``get``, ``empty``), for a single reader."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)

    async def get(self) -> Any:
        while not self._items:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        return self._items.pop(0)


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = ReceiveQueue()  # type: ignore[assignment]

    async def send(self, message: Any) -> None:
        await super().send(message)
        if self.handshake_complete and getattr(self, "response", None) is not None:
            # Answered (accepted or refused): nothing reads the handshake again. The
            # request object itself stays referenced by websockets' parser generator, so
            # its headers are emptied; the scope's copy of them goes too (the live
            # endpoint reads its credentials before it accepts).
            self.request.headers.clear()
            self.request = None  # type: ignore[assignment]
            self.response = None  # type: ignore[assignment]
            self.scope["headers"] = []


# ``clarion serve`` passes this to uvicorn as ``ws=`` (an import string, so that every
# process of ``--workers N`` loads it itself).
WS_PROTOCOL = f"{__name__}:LeanWebSocketProtocol"
