"""PostgreSQL LISTEN/NOTIFY between nodes, through asyncpg directly.

Why asyncpg and not the SQLAlchemy engine: LISTEN needs one dedicated, long-lived
connection with a notification callback, which a pooled SQLAlchemy connection is not.

NOTIFY payloads must be text under 8000 bytes. Envelopes are base64-encoded (messages are
opaque bytes, possibly not UTF-8) and cut into chunks ``"<msg id> <index> <total> <data>"``.
All chunks of one message are sent by a single statement, hence in one transaction:
PostgreSQL delivers a transaction's notifications together, in order, or not at all, so a
listener never sees half a message from a committed send. Incomplete messages (a listener
that reconnected mid-stream) are dropped after ``partial_ttl`` seconds.

Listening survives connection loss: a supervisor task checks the listener every
``check_interval`` (and at once when asyncpg reports the connection terminated),
reconnects with exponential backoff and LISTENs again. Messages notified while the
listener was away are lost — clients resume by cursor.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import time
import uuid
from typing import Any

import asyncpg  # type: ignore[import-untyped,unused-ignore]  # no stubs shipped

from clarion.hub.broker import DEFAULT_YIELD_EVERY
from clarion.hub.metrics import HubMetrics
from clarion.hub.relay import EnvelopeHandler, RelayBroker, Transport, TransportError
from clarion.hub.tasks import stop_task, wait_event

log = logging.getLogger("clarion.hub.postgres")

# What a publish fails with when the database goes away or the connection breaks; each
# ends the publishing connection (the next send makes a new one) and is a TransportError.
_CONNECTION_FAILURES = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)

#: Base64 characters per NOTIFY payload; with the header it stays well under 8000 bytes.
CHUNK_CHARS = 7800
DEFAULT_CHANNEL = "clarion_hub"


def is_postgres_url(url: str) -> bool:
    return url.split("://", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")


def asyncpg_dsn(url: str) -> str:
    """``postgresql+asyncpg://u@h/db`` -> ``postgresql://u@h/db`` (asyncpg's own form)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a URL: {url!r}")
    return f"{scheme.split('+', 1)[0]}://{rest}"


def encode_chunks(msg_id: str, data: bytes, chunk_chars: int = CHUNK_CHARS) -> list[str]:
    text = base64.b64encode(data).decode("ascii")
    parts = [text[i : i + chunk_chars] for i in range(0, len(text), chunk_chars)] or [""]
    total = len(parts)
    return [f"{msg_id} {idx} {total} {part}" for idx, part in enumerate(parts)]


class Reassembler:
    """Puts chunked payloads back together; bounded so a stuck sender cannot grow it."""

    def __init__(self, *, partial_ttl: float = 30.0, max_partial: int = 1000) -> None:
        self.partial_ttl = partial_ttl
        self.max_partial = max_partial
        self._partial: dict[str, tuple[float, int, dict[int, str]]] = {}

    def feed(self, payload: str) -> bytes | None:
        """The whole message when ``payload`` completes one, else ``None``."""
        try:
            msg_id, idx_s, total_s, part = payload.split(" ", 3)
            idx, total = int(idx_s), int(total_s)
        except ValueError:
            log.warning("dropping malformed NOTIFY payload (%d chars)", len(payload))
            return None
        if total == 1:
            return base64.b64decode(part)
        now = time.monotonic()
        entry = self._partial.get(msg_id)
        if entry is None:
            self._expire(now)
            entry = (now, total, {})
            self._partial[msg_id] = entry
        parts = entry[2]
        parts[idx] = part
        if len(parts) < total:
            return None
        del self._partial[msg_id]
        return base64.b64decode("".join(parts[i] for i in range(total)))

    def _expire(self, now: float) -> None:
        stale = [k for k, (t, _, _) in self._partial.items() if now - t > self.partial_ttl]
        for k in stale:
            del self._partial[k]
        while len(self._partial) >= self.max_partial:
            del self._partial[next(iter(self._partial))]

    @property
    def pending(self) -> int:
        return len(self._partial)


class PostgresTransport(Transport):
    name = "postgres"

    def __init__(
        self,
        dsn: str,
        *,
        channel: str = DEFAULT_CHANNEL,
        check_interval: float = 1.0,
        timeout: float = 3.0,
        backoff_max: float = 5.0,
    ) -> None:
        self.dsn = asyncpg_dsn(dsn)
        self.channel = channel
        self.check_interval = check_interval
        self.timeout = timeout
        self.backoff_max = backoff_max
        self._handler: EnvelopeHandler | None = None
        self._listener: asyncpg.Connection | None = None
        self._publisher: asyncpg.Connection | None = None
        self._pub_lock = asyncio.Lock()
        self._inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self._reasm = Reassembler()
        self._wake = asyncio.Event()
        self._listening = asyncio.Event()
        self._reason: str | None = "not started"
        self._tasks: list[asyncio.Task[None]] = []
        self._ids = itertools.count(1)
        self._token = uuid.uuid4().hex[:12]

    # --- lifecycle ----------------------------------------------------------------------
    async def start(self, on_envelope: EnvelopeHandler) -> None:
        self._handler = on_envelope
        await self._connect_listener()  # first attempt inline, so start() reports state
        self._tasks = [
            asyncio.create_task(self._supervise(), name="clarion-pg-listen"),
            asyncio.create_task(self._dispatch(), name="clarion-pg-dispatch"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            await stop_task(task)
        self._tasks = []
        for conn in (self._listener, self._publisher):
            if conn is not None:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(self.timeout):
                        await conn.close()
                if not conn.is_closed():
                    conn.terminate()
        self._listener = self._publisher = None
        self._listening.clear()
        self._reason = "closed"

    # --- health -------------------------------------------------------------------------
    @property
    def healthy(self) -> bool:
        return self._listening.is_set()

    @property
    def reason(self) -> str | None:
        return None if self._listening.is_set() else self._reason

    async def wait_listening(self, within: float) -> bool:
        return await wait_event(self._listening, within)

    @property
    def listener_pid(self) -> int | None:
        """Server PID of the LISTEN connection (tests terminate it to check reconnects)."""
        conn = self._listener
        return conn.get_server_pid() if conn is not None and not conn.is_closed() else None

    # --- sending ------------------------------------------------------------------------
    async def send(self, data: bytes) -> None:
        chunks = encode_chunks(f"{self._token}.{next(self._ids)}", data)
        async with self._pub_lock:  # one connection, one order
            try:
                if self._publisher is None or self._publisher.is_closed():
                    self._publisher = await asyncpg.connect(self.dsn, timeout=self.timeout)
                # One statement = one transaction: all chunks are delivered, or none.
                await self._publisher.execute(
                    "SELECT pg_notify($1, c) FROM unnest($2::text[]) AS c",
                    self.channel,
                    chunks,
                    timeout=self.timeout,
                )
            except _CONNECTION_FAILURES as exc:
                self._drop_publisher()
                raise TransportError(f"postgres NOTIFY failed: {exc}") from exc
            except BaseException:
                # Cancelled (or worse) mid-statement: the connection's protocol state is
                # unknown, and the next send on it would fail with "another operation is in
                # progress". A new connection is cheap next to that.
                self._drop_publisher()
                raise

    def _drop_publisher(self) -> None:
        conn, self._publisher = self._publisher, None
        if conn is not None:
            conn.terminate()

    # --- listening ----------------------------------------------------------------------
    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        data = self._reasm.feed(payload)
        if data is not None:
            self._inbox.put_nowait(data)

    def _on_terminated(self, _conn: Any) -> None:
        self._listening.clear()
        self._reason = "listener connection terminated"
        self._wake.set()

    async def _connect_listener(self) -> bool:
        try:
            conn = await asyncpg.connect(self.dsn, timeout=self.timeout)
            try:
                await conn.add_listener(self.channel, self._on_notify)
            except BaseException:
                conn.terminate()
                raise
        except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
            self._reason = f"postgres unreachable: {type(exc).__name__}: {exc}"
            return False
        conn.add_termination_listener(self._on_terminated)
        self._listener = conn
        self._reason = None
        self._listening.set()
        log.info("listening on postgres channel %s", self.channel)
        return True

    async def _supervise(self) -> None:
        delay = 0.1
        while True:
            await wait_event(self._wake, self.check_interval)
            self._wake.clear()
            conn = self._listener
            if conn is not None and not conn.is_closed():
                try:
                    await conn.execute("SELECT 1", timeout=self.timeout)
                    continue
                except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
                    self._reason = f"listener check failed: {exc}"
                    conn.terminate()
            self._listening.clear()
            self._listener = None
            if await self._connect_listener():
                delay = 0.1
            else:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)
                self._wake.set()  # retry right after the backoff

    async def _dispatch(self) -> None:
        """Hand envelopes to the broker one at a time, in arrival order."""
        while True:
            data = await self._inbox.get()
            if self._handler is None:
                continue
            try:
                await self._handler(data)
            except Exception:  # one bad envelope must not stop dispatching
                log.exception("handling a postgres envelope failed")


class PostgresBroker(RelayBroker):
    """LISTEN/NOTIFY across nodes, for PostgreSQL deployments without Redis."""

    def __init__(
        self,
        dsn: str,
        *,
        node_id: str,
        channel: str = DEFAULT_CHANNEL,
        queue_size: int = 1000,
        yield_every: int = DEFAULT_YIELD_EVERY,
        metrics: HubMetrics | None = None,
    ) -> None:
        self.pg_transport = PostgresTransport(dsn, channel=channel)
        super().__init__(
            [self.pg_transport],
            node_id=node_id,
            backend="postgres",
            queue_size=queue_size,
            yield_every=yield_every,
            metrics=metrics,
        )
