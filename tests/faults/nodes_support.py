"""What the two-node, restart, retry and secrets fault tests share.

* :class:`PrivateRedis`: a redis-server of the test's own (free port, data dir under the
  test's tmp dir), killed, frozen (SIGSTOP) and thawed (SIGCONT) by its PID. The shared
  Redis at 6379 is never touched.
* :func:`fresh_pg_database`: a new, migrated database on the shared PostgreSQL, dropped
  afterwards; the only thing these tests do to the shared server.
* :class:`WsRecorder`: a WebSocket client that records every ``notification.created``
  frame it gets (with its id) and, when its socket closes, reconnects with its cursor
  as docs/realtime.md tells clients to.
* :class:`WebhookReceiver`: a local HTTP receiver in a thread of its own that answers
  each path from a script and records every copy it gets.
* :func:`write_result`: the figures of a run, as JSON under ``build/faults/``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest
import websockets
from aiohttp import web
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from tests.conftest import PG_ADMIN_URL, service_missing
from tests.e2e.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "build" / "faults"

T = TypeVar("T")


def write_result(test: str, figures: dict[str, Any]) -> Path:
    """Write one run's figures to ``build/faults/<test>.json`` (read by people and CI)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{test}.json"
    path.write_text(json.dumps(figures, indent=2, sort_keys=True, default=str) + "\n")
    return path


def run_sync(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, even inside a running event loop
    (in a thread of its own, so the caller's loop is not re-entered)."""

    async def main() -> T:
        return await make()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result(timeout=120)


# --- clarion serve ------------------------------------------------------------------


# --- a private Redis -------------------------------------------------------------------


class PrivateRedis:
    """A redis-server only this test uses; every signal goes to its own PID."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        if shutil.which("redis-server") is None:
            service_missing("redis-server", "binary not found")
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.frozen = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> None:
        """Start (or restart on the same port) and wait until it answers PING."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        log = (self.dir / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {(self.dir / 'redis.log').read_text()}")
            with contextlib.suppress(OSError):
                if self._ping():
                    self.frozen = False
                    return
            time.sleep(0.05)
        raise RuntimeError("private redis-server did not answer PING")

    def _ping(self) -> bool:
        import socket

        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")

    def kill(self) -> None:
        """SIGKILL by PID (a frozen process dies too: SIGKILL needs no scheduling)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.frozen = False

    def freeze(self) -> None:
        assert self.proc is not None and self.proc.poll() is None
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        if self.proc is not None and self.proc.poll() is None and self.frozen:
            os.kill(self.proc.pid, signal.SIGCONT)
        self.frozen = False

    def stop(self) -> None:
        self.thaw()
        self.kill()


# --- a fresh database on the shared PostgreSQL -------------------------------------------


async def _pg_exec(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL.replace("+asyncpg", ""), timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def fresh_pg_database(tag: str = "faults") -> Iterator[str]:
    """A new migrated database on the shared server; its SQLAlchemy URL. Dropped after."""
    from clarion.store.migrate import upgrade_sync

    name = f"clarion_{tag}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        run_sync(lambda: _pg_exec(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        service_missing("PostgreSQL at 127.0.0.1:5432", exc)
    url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(upgrade_sync, url).result(timeout=120)
        yield url
    finally:
        run_sync(lambda: _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# --- a recording WebSocket client --------------------------------------------------------


@dataclass
class WsRecorder:
    """One live client of one user on one node. Counts every ``notification.created``
    per id; on a close, reconnects with ``?cursor=`` (the newest id it has)."""

    name: str
    base_url: str  # http://host:port of the node
    user: str
    token: Callable[[], str]
    counts: Counter[int] = field(default_factory=Counter)
    replayed: Counter[int] = field(default_factory=Counter)
    close_codes: list[int | None] = field(default_factory=list)
    connect_errors: list[str] = field(default_factory=list)
    connects: int = 0
    cursor: int | None = None
    _task: asyncio.Task[None] | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self) -> str:
        url = self.base_url.replace("http://", "ws://") + "/api/v1/ws"
        return url + (f"?cursor={self.cursor}" if self.cursor is not None else "")

    async def start(self, timeout: float = 30.0) -> None:
        self._task = asyncio.create_task(self._run(), name=f"ws-{self.name}")
        await asyncio.wait_for(self._ready.wait(), timeout)

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                async with websockets.connect(self.url(), open_timeout=10) as ws:
                    await ws.send(orjson.dumps({"type": "auth", "token": self.token()}).decode())
                    self.connects += 1
                    await self._read(ws)
                    if not self._stop.is_set():
                        self.close_codes.append(ws.close_code)
            except ConnectionClosed as exc:
                self.close_codes.append(exc.rcvd.code if exc.rcvd else None)
            except (OSError, TimeoutError, InvalidHandshake, InvalidStatus) as exc:
                self.connect_errors.append(type(exc).__name__)
            if not self._stop.is_set():
                await asyncio.sleep(0.5)

    async def _read(self, ws: Any) -> None:
        stop = asyncio.create_task(self._stop.wait())
        try:
            while True:
                recv = asyncio.ensure_future(ws.recv())
                done, _ = await asyncio.wait({recv, stop}, return_when=asyncio.FIRST_COMPLETED)
                if stop in done:
                    recv.cancel()
                    with contextlib.suppress(BaseException):
                        await recv
                    return
                msg = orjson.loads(recv.result())
                kind = msg.get("type")
                if kind == "unread_count":
                    self._ready.set()
                elif kind == "notification.created":
                    nid = int(msg["id"])
                    self.counts[nid] += 1
                    if msg.get("replay"):
                        self.replayed[nid] += 1
                    self.cursor = nid if self.cursor is None else max(self.cursor, nid)
        finally:
            stop.cancel()

    def missing(self, expected: set[int]) -> set[int]:
        return expected - set(self.counts)

    def unexpected(self, expected: set[int]) -> set[int]:
        return set(self.counts) - expected

    def duplicated(self) -> dict[int, int]:
        return {nid: n for nid, n in self.counts.items() if n > 1}

    async def wait_for(self, expected: set[int], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.missing(expected):
                return True
            await asyncio.sleep(0.2)
        return not self.missing(expected)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 15)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(BaseException):
                    await self._task


# --- a scripted webhook receiver ---------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""


@dataclass(frozen=True)
class Copy:
    """One request the receiver got."""

    path: str
    at: float  # time.time()
    webhook_id: str | None
    headers: dict[str, str]
    body: bytes
    status: int  # what it answered


class WebhookReceiver:
    """Answers each path with its script, one reply per request in order (the last one
    repeats); unknown paths get 200. Records every copy. Runs its own loop in a thread so
    that blocking calls in the test (starting servers, the CLI) never stall it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.copies: list[Copy] = []
        self._scripts: dict[str, list[Reply]] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, path: str, *replies: Reply) -> None:
        with self._lock:
            self._scripts[path] = list(replies)

    def copies_for(self, path: str) -> list[Copy]:
        with self._lock:
            return [c for c in self.copies if c.path == path]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        with self._lock:
            script = self._scripts.get(request.path)
            reply = Reply()
            if script:
                reply = script.pop(0) if len(script) > 1 else script[0]
            self.copies.append(
                Copy(
                    request.path,
                    time.time(),
                    request.headers.get("webhook-id"),
                    dict(request.headers),
                    body,
                    reply.status,
                )
            )
        return web.Response(status=reply.status, headers=reply.headers, text=reply.body)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def needs(binary: str) -> None:
    if shutil.which(binary) is None:
        pytest.skip(f"{binary} not installed")
