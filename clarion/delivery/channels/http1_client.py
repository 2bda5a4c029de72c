"""A lean HTTP/1.1 client for webhook POSTs: keep-alive connections pooled per pinned
destination, responses parsed by ``httptools`` (llhttp, in C).

Why not httpx here: a webhook POST through httpx/httpcore costs several hundred µs of
Python per request (anyio locks and events, h11 in pure Python, a library sniff per
request), which capped raw signed POSTs at ~300-400/s on the 2-core bench machine. This
client does one ``transport.write`` per request and parses the answer in C.
aiohttp's client, measured for the same job under the same rules, reached 0.29 of this
client's deliveries/s at ~4x the CPU per request (``bench/webhook_clients.py``,
docs/delivery.md).

What it keeps from the httpx path (docs/channels.md, SSRF rules):

* it dials exactly the address it is given (the one :class:`UrlGuard` checked); the
  ``Host`` header and the TLS SNI/certificate name are the URL's host name;
* redirects are never followed (it returns the 3xx; the caller classifies it);
* no proxy from the environment is ever consulted.

Connections are reused only for the same ``(scheme, address, port, host name)``: a TLS
session verified for one name is never used for another name, and a name that now
resolves elsewhere gets new connections to the new (checked) address. Idle connections
expire after ``keepalive_seconds``.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

import httptools

#: Bytes of a response body kept for diagnostics (error details).
BODY_KEEP = 300
#: A response body larger than this is not read to the end: the connection is closed.
BODY_DRAIN_LIMIT = 64 * 1024

PoolKey = tuple[str, str, int, str]  # scheme, address dialled, port, host name (SNI/Host)
Dialer = Callable[
    [Callable[[], asyncio.Protocol], str, int, ssl.SSLContext | None, str | None],
    Awaitable[tuple[asyncio.BaseTransport, asyncio.Protocol]],
]


class HttpError(Exception):
    """The request did not produce a response; ``kind`` is ``timeout`` or ``connect``."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"{kind} ({name})")
        self.kind = kind
        self.name = name


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes  # the first BODY_KEEP bytes


async def _dial(
    factory: Callable[[], asyncio.Protocol],
    address: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    server_hostname: str | None,
) -> tuple[asyncio.BaseTransport, asyncio.Protocol]:
    loop = asyncio.get_running_loop()
    return await loop.create_connection(
        factory, address, port, ssl=ssl_context, server_hostname=server_hostname
    )


def default_ssl_context() -> ssl.SSLContext:
    """Certificate verification against the host name, like httpx's default (certifi)."""
    try:
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover - certifi comes with httpx
        return ssl.create_default_context()


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection, one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[bool] | None = None
        self.closed = False
        self.got_bytes = False
        self.headers_done = False
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.body_seen = 0
        self.idle_since = 0.0
        self.uses = 0

    # --- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's transports (``clarion serve`` runs on uvloop
        # through uvicorn) implement the interface without subclassing asyncio's.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.waiter is None or self.waiter.done():
            # Bytes while idle (or after the answer): the stream is out of step; never
            # reuse it.
            self.close()
            return
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.fail(HttpError("connect", "UnexpectedUpgrade"))
        except httptools.HttpParserError:
            self.fail(HttpError("connect", "RemoteProtocolError"))

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            if self.headers_done:
                # A body delimited by the end of the connection (no length): complete.
                waiter.set_result(False)
            else:
                name = type(exc).__name__ if exc is not None else "RemoteDisconnected"
                waiter.set_exception(HttpError("connect", name))

    # --- httptools callbacks ----------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        if len(self.body) < BODY_KEEP:
            self.body += body[: BODY_KEEP - len(self.body)]
        self.body_seen += len(body)
        if self.body_seen > BODY_DRAIN_LIMIT and self.waiter is not None:
            # Enough: answer with what we have and drop the connection.
            if not self.waiter.done():
                self.waiter.set_result(False)
            self.close()

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:
            # An interim answer (100 Continue, 103 Early Hints): the real one follows.
            self.headers_done = False
            self.headers = {}
            return
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(self.parser.should_keep_alive())

    # --- client side ------------------------------------------------------------------
    def fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def usable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    async def request(self, data: bytes) -> tuple[Response, bool]:
        """Write one request, wait for its answer; returns it and whether to keep-alive."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self.waiter = waiter = loop.create_future()
        self.got_bytes = self.headers_done = False
        self.status = self.body_seen = 0
        self.headers = {}
        self.body = bytearray()
        self.uses += 1
        self.transport.write(data)
        try:
            keep = await waiter
        finally:
            self.waiter = None
        return Response(self.status, self.headers, bytes(self.body)), keep and not self.closed


class Http1Pool:
    """Keep-alive HTTP/1.1 connections per destination; see the module docstring."""

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        keepalive_seconds: float = 5.0,
        max_idle_per_key: int = 128,
        dialer: Dialer | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.timeout = timeout
        self.keepalive_seconds = keepalive_seconds
        self.max_idle_per_key = max_idle_per_key
        self._dial: Dialer = dialer or _dial
        self._ssl = ssl_context
        self._idle: dict[PoolKey, list[_Connection]] = {}
        self._next_sweep = 0.0
        # Deadlines of requests in flight, checked by one timer that re-arms itself while
        # any are in flight: a timer per request (asyncio.timeout) was a visible cost.
        self._busy: dict[_Connection, float] = {}
        self._reaper: asyncio.TimerHandle | None = None
        self._reaper_loop: asyncio.AbstractEventLoop | None = None
        self._tick = max(0.01, min(0.25, timeout / 4))
        self.opened = 0  # connections dialled (for tests and metrics)

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = default_ssl_context()
        return self._ssl

    def idle_count(self, key: PoolKey | None = None) -> int:
        if key is not None:
            return len(self._idle.get(key, ()))
        return sum(len(v) for v in self._idle.values())

    async def _open(self, key: PoolKey) -> _Connection:
        scheme, address, port, host = key
        tls = self._ssl_context() if scheme == "https" else None
        _transport, protocol = await self._dial(
            _Connection, address, port, tls, host if tls is not None else None
        )
        assert isinstance(protocol, _Connection)
        self.opened += 1
        return protocol

    def _take_idle(self, key: PoolKey, now: float) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()  # most recently used first: the likeliest to be alive
            if conn.usable() and now - conn.idle_since < self.keepalive_seconds:
                return conn
            conn.close()
        return None

    def _put_idle(self, key: PoolKey, conn: _Connection, now: float) -> None:
        idle = self._idle.setdefault(key, [])
        if len(idle) >= self.max_idle_per_key:
            conn.close()
            return
        conn.idle_since = now
        idle.append(conn)
        if now >= self._next_sweep:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + self.keepalive_seconds
        for k in list(self._idle):
            keep = []
            for conn in self._idle[k]:
                if conn.usable() and now - conn.idle_since < self.keepalive_seconds:
                    keep.append(conn)
                else:
                    conn.close()
            if keep:
                self._idle[k] = keep
            else:
                del self._idle[k]

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        if self._reaper is None or self._reaper_loop is not loop:  # (a pool outliving a loop)
            self._reaper_loop = loop
            self._reaper = loop.call_later(self._tick, self._reap)

    def _reap(self) -> None:
        self._reaper = None
        now = time.monotonic()
        for conn, deadline in list(self._busy.items()):
            if now >= deadline:
                del self._busy[conn]
                conn.fail(HttpError("timeout", "ReadTimeout"))
        if self._busy:
            self._arm()

    async def request(self, key: PoolKey, data: bytes) -> Response:
        """Send the serialised request ``data`` to ``key``'s address; raise HttpError.

        ``timeout`` bounds the whole exchange (connect, write, answer), give or take the
        reaper's tick."""
        deadline = time.monotonic() + self.timeout
        for attempt in (0, 1):
            conn = self._take_idle(key, time.monotonic())
            reused = conn is not None
            if conn is None:
                conn = await self._connect(key, deadline)
            self._busy[conn] = deadline
            self._arm()
            try:
                response, keep = await conn.request(data)
            except HttpError as exc:
                conn.close()
                # A kept-alive connection the server closed while idle fails before any
                # byte of an answer: try once more on a fresh connection (receivers dedupe
                # on webhook-id anyway). Never after a timeout.
                if exc.kind == "connect" and reused and not conn.got_bytes and attempt == 0:
                    continue
                raise
            except BaseException:
                conn.close()  # cancelled mid-request: the stream is unusable
                raise
            finally:
                self._busy.pop(conn, None)
            if keep:
                self._put_idle(key, conn, time.monotonic())
            else:
                conn.close()
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def _connect(self, key: PoolKey, deadline: float) -> _Connection:
        try:
            return await asyncio.wait_for(self._open(key), max(0.0, deadline - time.monotonic()))
        except TimeoutError as exc:
            raise HttpError("timeout", "ConnectTimeout") from exc
        except ssl.SSLError as exc:
            raise HttpError("connect", type(exc).__name__) from exc
        except (OSError, ValueError) as exc:
            raise HttpError("connect", type(exc).__name__) from exc

    async def aclose(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
