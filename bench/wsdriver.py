"""WebSocket client driver, run as its own process: ``python bench/wsdriver.py '<spec>'``.

Opens ``count`` authenticated connections to one loopback server and records, for each
frame of interest, ``receipt wall time - the frame's ts`` (same machine, same clock).
Speaks Clarion's protocol (``/api/v1/ws?token=``, answers ``ping``), Socket.IO over a
raw Engine.IO v4 WebSocket (answers ``2`` with ``3``), or ``plain``: a bare WebSocket
(``?user=``) whose frames that start with ``{"ts":`` count (the broadcast peers,
``bench/peers/ws_broadcast.py`` and ``node_ws/server.js``), so one driver measures all.
``bytes`` in the stats is the text received, for sizing the peers' frames like Clarion's.

Spec: ``{"protocol": "clarion"|"socketio"|"plain", "url": "ws://127.0.0.1:P/...", "first": 0,
"count": 1000, "user_prefix": "u", "connect_concurrency": 200}``.

Talks JSON lines: prints ``{"connected": n, ...}`` once connected, then answers stdin
commands ``reset``, ``stats``, ``wait <n> <seconds>`` and ``quit``. It ends by itself
when stdin closes, and after ``max_seconds`` (default 1800) whatever happens.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, __file__.rsplit("/", 2)[0])
from bench.common import user_token

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None  # type: ignore[assignment]


class Stats:
    def __init__(self) -> None:
        self.reset()
        self.event = asyncio.Event()

    def reset(self) -> None:
        self.latencies: list[float] = []
        self.first = 0.0
        self.last = 0.0
        self.frames = 0
        self.bytes = 0

    def hit(self, ts: float, now: float) -> None:
        if not self.latencies:
            self.first = now
        self.last = now
        self.latencies.append(now - ts)
        self.event.set()

    def as_dict(self) -> dict[str, Any]:
        s = sorted(self.latencies)

        def at(q: float) -> float | None:
            if not s:
                return None
            return round(s[min(len(s) - 1, max(0, int(q * len(s) + 0.5) - 1))] * 1000, 3)

        return {
            "received": len(s),
            "frames": self.frames,
            "bytes": self.bytes,
            "first_wall": self.first,
            "last_wall": self.last,
            "p50_ms": at(0.5),
            "p95_ms": at(0.95),
            "p99_ms": at(0.99),
            "max_ms": at(1.0),
        }


def _head_ts(data: str) -> float | None:
    i = data.find('"ts":')
    if i < 0:
        return None
    j = i + 5
    end = j
    while end < len(data) and data[end] not in ",}":
        end += 1
    try:
        return float(data[j:end])
    except ValueError:
        return None


def _read(
    ws: aiohttp.ClientWebSocketResponse,
    stats: Stats,
    on_text: Callable[[str, float], Awaitable[None]],
) -> None:
    """Count every text frame of ``ws`` and hand it, with its receipt time, to the
    protocol's ``on_text`` (latency hits, ping answers), in a task of its own."""

    async def reader() -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            now = time.time()
            data: str = msg.data
            stats.frames += 1
            stats.bytes += len(data)
            await on_text(data, now)

    asyncio.get_running_loop().create_task(reader())


def _hit(stats: Stats, data: str, now: float) -> None:
    ts = _head_ts(data)
    if ts is not None:
        stats.hit(ts, now)


async def clarion_conn(
    session: aiohttp.ClientSession, url: str, user: str, stats: Stats
) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(f"{url}?token={user_token(user)}", autoping=True)

    async def on_text(data: str, now: float) -> None:
        if '"type":"notification.created"' in data[:64]:
            _hit(stats, data, now)
        elif '"type":"ping"' in data[:64]:
            await ws.send_str('{"type":"pong"}')

    _read(ws, stats, on_text)
    return ws


async def socketio_conn(
    session: aiohttp.ClientSession, url: str, user: str, stats: Stats
) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(f"{url}?EIO=4&transport=websocket&user={user}")
    opened = await ws.receive_str()
    assert opened.startswith("0"), opened
    await ws.send_str('40{"user":"' + user + '"}')
    joined = await ws.receive_str()
    assert joined.startswith("40"), joined

    async def on_text(data: str, now: float) -> None:
        if data == "2":
            await ws.send_str("3")
        elif data.startswith("42"):
            _hit(stats, data, now)

    _read(ws, stats, on_text)
    return ws


async def plain_conn(
    session: aiohttp.ClientSession, url: str, user: str, stats: Stats
) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(f"{url}?user={user}", autoping=True)

    async def on_text(data: str, now: float) -> None:
        if data.startswith('{"ts":'):
            _hit(stats, data, now)

    _read(ws, stats, on_text)
    return ws


CONNECTORS = {"clarion": clarion_conn, "socketio": socketio_conn, "plain": plain_conn}


async def main(spec: dict[str, Any]) -> None:
    stats = Stats()
    url = spec["url"]
    assert url.startswith(("ws://127.0.0.1", "ws://localhost")), url
    first, count = int(spec.get("first", 0)), int(spec["count"])
    prefix = spec.get("user_prefix", "u")
    conn = CONNECTORS[spec.get("protocol", "clarion")]
    connector = aiohttp.TCPConnector(limit=0)
    session = aiohttp.ClientSession(connector=connector)
    sem = asyncio.Semaphore(int(spec.get("connect_concurrency", 200)))
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    failed = 0

    async def open_one(i: int) -> None:
        nonlocal failed
        async with sem:
            try:
                sockets.append(await conn(session, url, f"{prefix}{i}", stats))
            except Exception:
                failed += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(open_one(i) for i in range(first, first + count)))
    out = {"connected": len(sockets), "failed": failed, "seconds": time.perf_counter() - t0}
    print(json.dumps(out), flush=True)

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    deadline = time.monotonic() + float(spec.get("max_seconds", 1800))
    while time.monotonic() < deadline:
        try:
            line = await asyncio.wait_for(reader.readline(), deadline - time.monotonic())
        except TimeoutError:
            break
        if not line:
            break
        cmd = line.decode().split()
        if not cmd:
            continue
        if cmd[0] == "quit":
            break
        if cmd[0] == "reset":
            stats.reset()
            print(json.dumps({"ok": True}), flush=True)
        elif cmd[0] == "stats":
            open_now = sum(1 for ws in sockets if not ws.closed)
            print(json.dumps({**stats.as_dict(), "open": open_now}), flush=True)
        elif cmd[0] == "wait":
            want, limit = int(cmd[1]), float(cmd[2])
            until = time.monotonic() + limit
            while len(stats.latencies) < want and time.monotonic() < until:
                stats.event.clear()
                try:
                    await asyncio.wait_for(stats.event.wait(), until - time.monotonic())
                except TimeoutError:
                    break
            # a short quiet period so stragglers of this round are counted here
            await asyncio.sleep(float(spec.get("settle", 0.2)))
            print(json.dumps(stats.as_dict()), flush=True)
    # No close handshakes one by one: the session closes every socket at once.
    await session.close()


if __name__ == "__main__":
    if uvloop is not None:
        uvloop.install()
    asyncio.run(main(orjson.loads(sys.argv[1])))
