"""S5's ceilings for the two hot reads, measured on the same seeded database in the same run:
the SQL Clarion issues for an unread count and for a first page, (a) straight through
asyncpg from a small client loop, and (b) behind a bare Starlette endpoint (two uvicorn
processes, as Clarion's ``serve --workers 2``) driven by the same load generator.

The statements are not copied: they are compiled from Clarion's own query builders
(``store/users._marks_query``, ``store/inbox._marks_and_page``) with the same bind order,
exactly as ``store/direct_reads`` does, and run on connections with the session setting
Clarion's pool uses (``plan_cache_mode=force_custom_plan``). So (a) is what the database
and the driver alone cost per read, and (b) adds only an HTTP stack that does nothing else:
Clarion's latency over HTTP is compared with (b) like with like, and (a) says how much of
either is the query itself.

    python bench/s5_raw.py PORT   # (b); the DSN comes from CLARION_BENCH_S5_RAW_DSN
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script: the repository root is not on the path yet
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
import orjson
from sqlalchemy import bindparam
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.common import percentiles
from clarion.store import direct_reads
from clarion.store import inbox as inbox_store
from clarion.store import users as user_store
from clarion.store.db import Database

# The session setting of Clarion's pool (store/db.py): custom plans on every execution.
SERVER_SETTINGS = {"plan_cache_mode": "force_custom_plan"}
PAGE_LIMIT = 20
DSN_ENV = "CLARION_BENCH_S5_RAW_DSN"


def statements() -> dict[str, tuple[str, tuple[str, ...]]]:
    """PostgreSQL text and bind order of the unread count's and the first page's statements,
    compiled from Clarion's builders by Clarion's compiler (the engine never connects)."""
    db = Database("postgresql+asyncpg://bench@127.0.0.1/compile-only")
    count = direct_reads.compile_sql(db, user_store._marks_query(bindparam("uid")))
    # GET /notifications with only user_id and limit: status all, not archived, no type,
    # no cursor (services/inbox.py defaults).
    page = direct_reads.compile_sql(db, inbox_store._marks_and_page(("all", "false", False, False)))
    return {"count": count, "page": page}


def _args(order: tuple[str, ...], user: str) -> list[Any]:
    values: dict[str, Any] = {"uid": user, "type": None, "before": None, "lim": PAGE_LIMIT}
    return [values[k] for k in order]


async def _closed_loop(
    call: Callable[[str], Any], pick: Callable[[], str], warmup: float, seconds: float
) -> dict[str, Any]:
    """One request at a time, as the HTTP "latency alone" figures are taken."""
    start = time.perf_counter()
    measured_from, end = start + warmup, start + warmup + seconds
    latencies: list[float] = []
    while (t0 := time.perf_counter()) < end:
        await call(pick())
        if t0 >= measured_from:
            latencies.append(time.perf_counter() - t0)
    return {"requests": len(latencies), **percentiles(latencies)}


async def _driver_run(dsn: str, users: int, seconds: float) -> dict[str, Any]:
    sql = statements()
    conn = await asyncpg.connect(dsn, server_settings=SERVER_SETTINGS)
    try:
        count_sql, count_order = sql["count"]
        page_sql, page_order = sql["page"]
        rows = await conn.fetch(page_sql, *_args(page_order, "heavy"))
        if len(rows) != PAGE_LIMIT:  # the same work as Clarion's page, or no comparison
            raise RuntimeError(f"raw first page returned {len(rows)} rows, not {PAGE_LIMIT}")

        def someone() -> str:
            return f"u{random.randrange(users - 1)}"

        def heavy() -> str:
            return "heavy"

        def count(u: str) -> Any:
            return conn.fetchrow(count_sql, *_args(count_order, u))

        def page(u: str) -> Any:
            return conn.fetch(page_sql, *_args(page_order, u))

        ops = {
            "unread_count": (count, someone),
            "unread_count_heavy": (count, heavy),
            "first_page": (page, someone),
            "first_page_heavy": (page, heavy),
        }
        return {name: await _closed_loop(f, p, 0.5, seconds) for name, (f, p) in ops.items()}
    finally:
        await conn.close()


def driver_baseline(dsn: str, users: int, seconds: float) -> dict[str, Any]:
    """(a): each statement alone on one open asyncpg connection, ``seconds`` each, random
    users ``u0``..``u{users-2}`` and the heavy user, as the HTTP latency figures."""
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # the same loop Clarion gets where uvloop is missing
        runner = asyncio.Runner()
    with runner:
        ops = runner.run(_driver_run(dsn, users, seconds))
    return {
        "client": "one asyncpg connection in the bench process, closed loop, one at a time",
        "statements": "compiled from Clarion's query builders (store/direct_reads.compile_sql)",
        "count_p50_ms": ops["unread_count"]["p50_ms"],
        "count_p99_ms": ops["unread_count"]["p99_ms"],
        "count_heavy_p99_ms": ops["unread_count_heavy"]["p99_ms"],
        "first_page_p50_ms": ops["first_page"]["p50_ms"],
        "first_page_p99_ms": ops["first_page"]["p99_ms"],
        "first_page_heavy_p99_ms": ops["first_page_heavy"]["p99_ms"],
        "ops": ops,
    }


# --- (b) the same statements behind a bare Starlette endpoint ----------------------------

_SQL = statements()
_pool: dict[str, Any] = {}


@asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    _pool["pool"] = await asyncpg.create_pool(
        os.environ[DSN_ENV], min_size=2, max_size=20, server_settings=SERVER_SETTINGS
    )
    try:
        yield
    finally:
        await _pool["pool"].close()


async def _count(request: Request) -> Response:
    uid = request.query_params["user_id"]
    sql, order = _SQL["count"]
    async with _pool["pool"].acquire() as conn:
        row = await conn.fetchrow(sql, *_args(order, uid))
    body = {"user_id": uid, "unread": row[0], "unseen": row[1]}
    return Response(orjson.dumps(body), media_type="application/json")


async def _page(request: Request) -> Response:
    uid = request.query_params["user_id"]
    sql, order = _SQL["page"]
    async with _pool["pool"].acquire() as conn:
        records = await conn.fetch(sql, *_args(order, uid))
    items = [dict(r.items()) for r in records if r["id"] is not None]
    return Response(orjson.dumps({"items": items}), media_type="application/json")


app = Starlette(
    routes=[Route("/count", _count), Route("/page", _page)],
    lifespan=_lifespan,
)

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(
        "bench.s5_raw:app", host="127.0.0.1", port=int(sys.argv[1]), workers=2, log_level="warning"
    )
