"""Commit -> WebSocket receipt latency at a light, steady load (the figure the realtime
issue asks for): ``clarion serve`` on PostgreSQL + Redis, N connected users, a paced
sender. The latency of a push is the client's receipt time minus the frame's ``ts`` (the
commit time, same machine clock). The heavy-load version is S2 in ``run.py``.

    .venv/bin/python bench/live_latency.py [--users 200] [--rate 20] [--seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from typing import Any

import httpx
import orjson
import websockets

from bench.common import (
    Procs,
    clarion_env,
    drop_db,
    fresh_db,
    percentiles,
    start_clarion,
    user_token,
    write_result,
)


async def measure(
    ws_url: str, api: str, key: str, users: int, rate: float, seconds: float
) -> dict[str, Any]:
    latencies: list[float] = []
    sockets = []
    for i in range(users):
        sockets.append(await websockets.connect(f"{ws_url}?token={user_token(f'u{i}')}"))
    for ws in sockets:
        await ws.recv()  # initial unread_count

    async def reader(ws: Any) -> None:
        async for raw in ws:
            now = time.time()
            for line in raw.split("\n") if isinstance(raw, str) else [raw]:
                msg = orjson.loads(line)
                if msg["type"] == "notification.created":
                    latencies.append(now - msg["ts"])

    readers = [asyncio.create_task(reader(ws)) for ws in sockets]
    sent = 0
    async with httpx.AsyncClient(base_url=api, headers={"Authorization": f"Bearer {key}"}) as c:
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            r = await c.post(
                "/api/v1/notifications",
                json={"user_id": f"u{random.randrange(users)}", "type": "lat", "title": "ping"},
            )
            assert r.status_code == 202, r.text
            sent += 1
            await asyncio.sleep(max(0.0, start + sent / rate - time.monotonic()))
    await asyncio.sleep(1.0)
    for task in readers:
        task.cancel()
    for ws in sockets:
        await ws.close()
    return {"sent": sent, "received": len(latencies), "latency_ms": percentiles(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    procs = Procs()
    db = "clarion_bench_latency"
    try:
        url = fresh_db(db).replace("postgresql://", "postgresql+asyncpg://")
        server = start_clarion(procs, clarion_env(url, CLARION_EMBEDDED_WORKER="false"))
        result = asyncio.run(
            measure(server.ws, server.url, server.key, args.users, args.rate, args.seconds)
        )
        result.update(users=args.users, rate=args.rate, seconds=args.seconds)
        write_result("live_latency", result)
        lat = result["latency_ms"]
        print(
            f"commit -> receipt over {result['received']}/{result['sent']} pushes, "
            f"{args.users} users, {args.rate}/s: p50 {lat['p50_ms']} ms, "
            f"p95 {lat['p95_ms']} ms, p99 {lat['p99_ms']} ms"
        )
    finally:
        procs.stop_all()
        drop_db(db)


if __name__ == "__main__":
    main()
