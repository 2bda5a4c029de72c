"""Per-request CPU and wall time of the hot routes, in one process through the ASGI app
(no sockets, no load generator): the quickest before/after check of a hot-path change.
Baseline in the same run: a one-row read with raw asyncpg, and Starlette's /healthz-like
route through the same client.

    .venv/bin/python -m bench.inprocess [--n 300] [--backend postgres|sqlite] [--redis URL]

``--redis`` runs the API rate limiter on Redis as ``clarion serve`` does in the bench (one
round trip per request); without it the limiter counts in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx

from bench.common import RESULTS, drop_db, fresh_db, write_result
from clarion.api.app import create_app
from clarion.config import Settings
from clarion.services.container import Services
from clarion.store.migrate import upgrade_sync


async def timed(fn: Callable[[], Awaitable[Any]], n: int) -> dict[str, float]:
    for _ in range(20):
        await fn()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(n):
        await fn()
    return {
        "cpu_ms": round((time.process_time() - cpu) / n * 1000, 3),
        "wall_ms": round((time.perf_counter() - wall) / n * 1000, 3),
    }


async def run(url: str, n: int, redis_url: str | None = None) -> dict[str, Any]:
    await asyncio.to_thread(upgrade_sync, url)
    settings = Settings(
        database_url=url,
        secret_key="b" * 40,
        embedded_worker=False,
        redis_url=redis_url,
        redis_prefix=f"clarion-inprocess-{os.getpid()}",
        _env_file=None,
    )  # type: ignore[call-arg]
    services = Services(settings)
    await services.start()
    _, key = await services.auth.create_api_key("bench")
    app = create_app(settings, services)
    out: dict[str, Any] = {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://bench", headers={"Authorization": f"Bearer {key}"}
    ) as c:
        body = {"user_id": "ana", "type": "t", "title": "hello"}
        await c.post("/api/v1/notifications", json=body)
        out["healthz"] = await timed(lambda: c.get("/healthz"), n)
        out["unread_count"] = await timed(
            lambda: c.get("/api/v1/notifications/unread-count?user_id=ana"), n
        )
        out["first_page"] = await timed(lambda: c.get("/api/v1/notifications?user_id=ana"), n)
        out["send"] = await timed(lambda: c.post("/api/v1/notifications", json=body), n)
    await services.close()
    sql = "SELECT unread_count FROM users WHERE user_id = "
    if url.startswith("sqlite"):
        import aiosqlite

        async with aiosqlite.connect(url.split("///", 1)[1]) as db:

            async def row() -> Any:
                async with db.execute(sql + "?", ("ana",)) as cur:
                    return await cur.fetchone()

            out["raw_driver_row"] = await timed(row, n)
        return out
    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    out["raw_driver_row"] = await timed(lambda: conn.fetchrow(sql + "$1", "ana"), n)
    await conn.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--redis", default=None, help="e.g. redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    db = "clarion_bench_inprocess"
    try:
        if args.backend == "sqlite":
            path = RESULTS / "inprocess.db.tmp"
            for leftover in RESULTS.glob("inprocess.db.tmp*"):
                leftover.unlink()
            url = f"sqlite+aiosqlite:///{path}"
        else:
            url = fresh_db(db).replace("postgresql://", "postgresql+asyncpg://")
        result = asyncio.run(run(url, args.n, args.redis))
        name = f"inprocess_{args.backend}" + ("_redis" if args.redis else "")
        write_result(name, {"n": args.n, "redis": bool(args.redis), "routes": result})
        for name, figures in result.items():
            print(f"{name:16} {figures['cpu_ms']:7.3f} ms CPU  {figures['wall_ms']:7.3f} ms wall")
    finally:
        if args.backend == "postgres":
            drop_db(db)


if __name__ == "__main__":
    main()
