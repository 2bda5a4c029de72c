"""The dashboard: every dashboard page's time over S8's events (seeded and folded the same
way: 10,000,000 events on PostgreSQL; quick: 1,000,000), and a set of notifications with
deliveries, some dead, for the search, story and dead-letter pages.

A signed-in session (the sign-in form, as a browser), then each page alone, sequentially
on one kept-alive connection: warm-up, then N requests, p50/p99 of the whole request
(client side) and of the server's own time (the page's ``Server-Timing: app;dur=``,
measured in the dashboard's route). The target is 200 ms of server time per page.

    PYTHONPATH=$PWD .venv/bin/python bench/run.py --only s_dashboard [--quick]

With S8's data loaded ahead (``python -m bench.s8_analytics prepare``, 10,000,000 events
without ``--quick``), ``CLARION_BENCH_S8_PREPARED=1`` measures on a copy of that
database (``CREATE DATABASE ... TEMPLATE``: a file copy, no reload, and S8's own data is
left as it was) instead of seeding a fresh one.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from bench import s8_data
from bench.common import (
    PG_BASE,
    Clarion,
    Procs,
    clarion_env,
    drop_db,
    fresh_db,
    percentiles,
    psql,
    start_clarion,
)
from bench.s8_data import _vacuum_rollups, fold, prepared_state, seed_postgres
from clarion.store.migrate import upgrade_sync

DB = "clarion_bench_dashboard"
TARGET_MS = 200


def sign_in(server: Clarion) -> httpx.Client:
    client = httpx.Client(base_url=server.url, timeout=60)
    form = client.get("/dashboard/login").text
    match = re.search(r'name="csrf" value="([^"]+)"', form)
    assert match
    r = client.post("/dashboard/login", data={"key": server.key, "csrf": match.group(1)})
    assert r.status_code == 303, r.text
    return client


def seed_notifications(server: Clarion, n: int) -> int:
    """``n`` sends through the API, a tenth of them to a webhook nobody answers."""
    api = httpx.Client(
        base_url=f"{server.url}/api/v1",
        headers={"Authorization": f"Bearer {server.key}"},
        timeout=60,
    )
    r = api.post("/webhooks", json={"url": "http://127.0.0.1:9/hook"})
    assert r.status_code == 201, r.text
    last = 0
    for i in range(n):
        channels = ["in_app", "webhook"] if i % 10 == 0 else ["in_app"]
        body = {"user_id": f"u{i % 500}", "type": "order", "title": f"#{i}", "channels": channels}
        r = api.post("/notifications", json=body)
        last = int(r.json()["ids"][0])
    return last


SERVER_TIMING = re.compile(r"app;dur=([0-9.]+)")


def timed_page(client: httpx.Client, path: str, warmup: int, n: int) -> dict[str, Any]:
    """``warmup`` then ``n`` sequential GETs, each read to its end: the whole request's
    time and the server's own (its ``Server-Timing``)."""
    whole: list[float] = []
    server: list[float] = []
    statuses: dict[str, int] = {}
    first_error = None
    for k in range(warmup + n):
        t0 = time.perf_counter()
        r = client.get(path)
        body = r.content
        dt = time.perf_counter() - t0
        if r.status_code != 200 and first_error is None:
            first_error = f"{r.status_code}: {body[:300]!r}"
        if k < warmup:
            continue
        statuses[str(r.status_code)] = statuses.get(str(r.status_code), 0) + 1
        whole.append(dt)
        found = SERVER_TIMING.search(r.headers.get("server-timing", ""))
        if found:
            server.append(float(found.group(1)) / 1000)
    out: dict[str, Any] = {"requests": n, "status": statuses, **percentiles(whole)}
    out["server"] = percentiles(server) if len(server) == n else None
    out["response_bytes"] = len(body)
    if first_error:
        out["first_error"] = first_error
    return out


def measure(server: Clarion, last_id: int, quick: bool) -> dict[str, Any]:
    client = sign_in(server)
    n = 10 if quick else 30
    pages = {
        "overview": "/dashboard",
        "notifications": "/dashboard/notifications",
        "notifications_by_user": "/dashboard/notifications?user_id=u7",
        "story": f"/dashboard/notifications/{last_id}",
        "dead_letters": "/dashboard/dead-letters",
        "experiments": "/dashboard/experiments",
        "templates": "/dashboard/templates",
        "users": "/dashboard/users?prefix=u1",
        "user": "/dashboard/users/u7",
        "system": "/dashboard/system",
        "audit": "/dashboard/audit",
    }
    out = {}
    for name, path in pages.items():
        out[name] = timed_page(client, path, 2, n)
        print(f"  {name}: {out[name]}", flush=True)
    return out


def run(procs: Procs, quick: bool, profile: bool) -> dict[str, Any]:
    total = 1_000_000 if quick else 10_000_000
    prepared = prepared_state(quick)
    if prepared:  # a copy of S8's loaded database; S8's own stays as it was
        drop_db(DB)
        psql(f'CREATE DATABASE "{DB}" TEMPLATE "{s8_data.DB}"')
        plain = f"{PG_BASE}/{DB}"
    else:
        plain = fresh_db(DB)
    url = plain.replace("postgresql://", "postgresql+asyncpg://")
    try:
        upgrade_sync(url)  # S8's data may predate the newest migration
        out: dict[str, Any] = {"events": total, "target_ms": TARGET_MS}
        if prepared:
            out.update(prepared["postgres"], prepared=True)
        else:
            out["seed"] = asyncio.run(seed_postgres(plain, total, datetime.now(UTC)))
            out["fold"] = asyncio.run(fold(url, total))
            asyncio.run(_vacuum_rollups(plain))
        env = clarion_env(
            url,
            CLARION_ANALYTICS_ROLLUPS="false",
            CLARION_WEBHOOK_ALLOW_PRIVATE="true",
            CLARION_MAX_ATTEMPTS="1",
        )
        server = start_clarion(procs, env, log_name="dashboard")
        try:
            last_id = seed_notifications(server, 200 if quick else 2000)
            out["pages"] = measure(server, last_id, quick)
        finally:
            procs.stop(server.proc)
        out["verdict"] = {name: _verdict(page) for name, page in out["pages"].items()}
        return out
    finally:
        drop_db(DB)


def _verdict(page: dict[str, Any]) -> str:
    """Against the server's own time at p99 (the target's measure)."""
    server = page.get("server") or {}
    p99 = server.get("p99_ms")
    return "no server timing" if p99 is None else ("ok" if p99 <= TARGET_MS else "over")
