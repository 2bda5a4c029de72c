"""uvicorn's httptools HTTP protocol with the limits a public server needs.

uvicorn (0.53-0.55) sets no bound on what a client sends before its headers are
complete: httptools keeps appending a header's bytes until its line ends (a 200 MB header
was read whole, and parsing one of 50 MB stalled every other client of the process for
1.4 s), and nothing limits how long the headers may take once the first byte arrived
(2,000 connections trickling a byte now and then were held open for good). Its
``limit_concurrency`` answers 503 to *every* request once the process is at the limit,
established connections included.

What this protocol adds, per ``clarion serve`` process (settings in clarion/config.py):

- ``CLARION_MAX_HEADER_BYTES``: the request line and headers of one request together.
  The check runs before the parser sees the bytes, so no more than that (plus at most one
  socket read for pipelined requests) is ever parsed. Beyond it: ``431`` with the
  documented error body (code ``headers_too_large``), then the connection is closed.
- ``CLARION_HEADER_TIMEOUT_SECONDS``: from the connection's start, or from the end of the
  previous response on a kept-alive connection, until the headers are complete. Past it
  the connection is closed without an answer (the client may be sending nothing at all).
  A request being answered (a long Server-Sent Events stream, a WebSocket) is never
  timed: the clock stops when its headers are complete.
- ``CLARION_MAX_CONNECTIONS``: open HTTP and WebSocket connections. One more is answered
  ``503`` (code ``too_many_connections``) on its first bytes and closed; connections
  already open keep working.

After a refusal the connection reads and drops what the client still sends for up to
``LINGER_SECONDS`` or ``LINGER_BYTES`` before closing, so that a client still sending its
request reads the answer instead of a connection reset (a close with unread data makes
the kernel reset the connection). Nothing is kept or parsed meanwhile.

It relies on these parts of uvicorn's ``HttpToolsProtocol``: ``connection_made``,
``connection_lost``, ``data_received``, ``on_message_begin``, ``on_headers_complete``,
``on_message_complete``, ``on_response_complete``, ``handle_websocket_upgrade``,
``_unset_keepalive_if_required``, and the attributes ``transport``,
``connections`` (the server's set of open connections), ``cycle`` and
``server_state.default_headers``. tests/unit/test_server_protocol.py fails when one of
them changes; pyproject.toml pins the uvicorn versions it was checked against.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from clarion.config import Settings
from clarion.errors import doc_link

LINGER_SECONDS = 2.0
LINGER_BYTES = 1_048_576
# A request's headers end with an empty line; bare LF is accepted as well so that the
# check never refuses what the parser would take.
_HEAD_ENDS = (b"\r\n\r\n", b"\n\n")


@dataclass(frozen=True)
class ServerLimits:
    max_header_bytes: int = 16_384
    header_timeout_seconds: float = 10.0
    max_connections: int = 30_000


_limits = ServerLimits()


def configure(settings: Settings) -> None:
    """Set the limits every connection of this process gets from now on.

    Why a module setting: uvicorn builds the protocol itself with its own ``Config``, and
    with ``--workers N`` in processes of its own that import this module by name; each
    process configures it from its settings before it serves (cli.py)."""
    global _limits
    _limits = ServerLimits(
        max_header_bytes=settings.max_header_bytes,
        header_timeout_seconds=settings.header_timeout_seconds,
        max_connections=settings.max_connections,
    )


def current_limits() -> ServerLimits:
    return _limits


def _error_response(status: bytes, code: str, message: str, default_headers: Any) -> bytes:
    body = orjson.dumps(
        {"error": {"code": code, "message": message, "details": None, "doc": doc_link(code)}}
    )
    head = [b"HTTP/1.1 " + status + b"\r\n"]
    for name, value in default_headers:
        head.append(name + b": " + value + b"\r\n")
    head.append(b"content-type: application/json\r\n")
    head.append(b"content-length: " + str(len(body)).encode() + b"\r\n")
    head.append(b"connection: close\r\n\r\n")
    return b"".join(head) + body


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """One HTTP connection; see the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = _limits
        self._awaiting_head = True  # no request's headers are in progress or complete
        self._head_bytes = 0  # bytes received towards the current request's headers
        self._head_tail = b""  # the last bytes of them, for an end split across reads
        # The header clock: a deadline, and one timer that checks it. Starting and
        # stopping the clock per request only sets the deadline; the timer is re-armed
        # when it fires early (a timer armed and cancelled per request cost ~10 us).
        self._head_deadline: float | None = None
        self._head_timer: asyncio.TimerHandle | None = None
        self._over_limit = False  # one connection too many: answered 503 on first bytes
        # After a refusal: bytes still read and dropped before closing; -1: not refused.
        # From then on the parser is never fed again.
        self._lingering = -1

    # --- connection -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        over = len(self.connections) >= self._limits.max_connections
        super().connection_made(transport)
        if over:
            # Not counted: refused connections must not keep others out.
            self.connections.discard(self)
            self._over_limit = True
        self._start_head_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering >= 0:
            self._lingering -= len(data)
            if self._lingering < 0:
                self.transport.close()
            return
        if self._over_limit:
            self._refuse(
                b"503 Service Unavailable",
                "too_many_connections",
                "this server holds as many connections as it may; retry shortly",
                len(data),
            )
            return
        if self._awaiting_head:
            budget = self._limits.max_header_bytes - self._head_bytes
            if len(data) > budget and not self._head_ends_within(data, budget):
                self._refuse(
                    b"431 Request Header Fields Too Large",
                    "headers_too_large",
                    f"the request line and headers exceed {self._limits.max_header_bytes} bytes",
                    len(data),
                )
                return
            self._head_bytes += len(data)
            self._head_tail = data[-3:]
        super().data_received(data)

    def _head_ends_within(self, data: bytes, budget: int) -> bool:
        window = self._head_tail + data[: max(0, budget)]
        return any(end in window for end in _HEAD_ENDS)

    # --- parser callbacks -----------------------------------------------------------
    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._head_deadline = None
        super().on_headers_complete()

    def handle_websocket_upgrade(self) -> None:
        # This object is done with: its timer must not keep it alive (20,000 sockets).
        self._cancel_head_timer()
        super().handle_websocket_upgrade()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # What follows on this connection is the next request's headers. Bytes of it
        # in the same read as this request's end are not counted (at most one read).
        self._awaiting_head = True
        self._head_bytes = 0
        self._head_tail = b""

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._awaiting_head and not self.transport.is_closing():
            self._start_head_clock()  # the next request's headers are due from now

    # --- the header clock -------------------------------------------------------------
    def _start_head_clock(self) -> None:
        deadline = self.loop.time() + self._limits.header_timeout_seconds
        self._head_deadline = deadline
        if self._head_timer is None:
            self._head_timer = self.loop.call_at(deadline, self._check_head_clock)

    def _cancel_head_timer(self) -> None:
        self._head_deadline = None
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _check_head_clock(self) -> None:
        self._head_timer = None
        deadline = self._head_deadline
        if deadline is None:
            return  # stopped: the next start arms a timer again
        if self.loop.time() < deadline:  # restarted since this timer was armed
            self._head_timer = self.loop.call_at(deadline, self._check_head_clock)
            return
        self._head_deadline = None
        # Only a connection waiting for headers: not one whose request is being answered
        # (the next request's clock starts when that response is complete).
        if self._awaiting_head and (self.cycle is None or self.cycle.response_complete):
            self.transport.close()

    # --- refusing -----------------------------------------------------------------------
    def _refuse(self, status: bytes, code: str, message: str, received: int) -> None:
        self._cancel_head_timer()
        self._unset_keepalive_if_required()
        self.connections.discard(self)
        self._lingering = max(0, LINGER_BYTES - received)
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request's headers while a response is still going out: an
            # answer now would land inside that response.
            self.transport.close()
            return
        self.transport.write(
            _error_response(status, code, message, self.server_state.default_headers)
        )
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the answer is complete: the client sees its end
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


# ``clarion serve`` passes this to uvicorn as ``http=`` (an import string, so that every
# process of ``--workers N`` loads it itself).
HTTP_PROTOCOL = f"{__name__}:LimitedHttpToolsProtocol"
