"""Several WebSocket frames in one socket write, through uvicorn's own sans-I/O protocol
object: the writer of every live socket (``api/ws.py``) sends a delivery this way."""

from __future__ import annotations

from typing import Any

from starlette.types import Send
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState

from clarion.metrics import WS_WRITES


def writable_now(send: Send) -> Any | None:
    """uvicorn's sans-I/O protocol behind ``send`` when its own ``send`` would write at
    once (handshake done, not closing, transport not paused), else ``None``."""
    proto: Any = getattr(send, "__self__", None)
    if (
        not isinstance(proto, WebSocketsSansIOProtocol)
        or not proto.writable.is_set()
        or proto.disconnected
        or not proto.handshake_complete
        or proto.close_sent
        or proto.initial_response is not None
        or proto.transport.is_closing()
    ):
        return None
    return proto


def write_frames(proto: Any, frames: list[bytes]) -> None:
    """``frames`` as WebSocket text messages, in ONE socket write, through a protocol
    :func:`writable_now` returned.

    Why: a delivery is two messages (the notification, then the unread counts) and a
    broadcast to 10,000 sockets is 20,000 of them; through ASGI each is one syscall, the
    largest single cost of a fan-out on these machines (~0.2-0.6 ms per syscall). The
    frames are built by the same websockets protocol object uvicorn uses (so masking,
    fragmentation rules and its close state stay its own), and sent once."""
    try:
        for f in frames:
            proto.conn.send_text(f)
    except InvalidState as exc:  # what uvicorn's send raises for the same state
        raise ClientDisconnected() from exc
    proto.transport.write(b"".join(proto.conn.data_to_send()))
    WS_WRITES["frames"] += len(frames)
    WS_WRITES["writes"] += 1


def write_at_once(send: Send, frames: list[bytes]) -> bool:
    """Write several ``frames`` in one socket write when uvicorn allows it now; ``False``
    leaves them to the ASGI ``send`` (one frame gains nothing by it)."""
    proto = writable_now(send) if len(frames) > 1 else None
    if proto is None:
        return False
    write_frames(proto, frames)
    return True
