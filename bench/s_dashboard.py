"""The dashboard: every dashboard page's time over S8's events (seeded and folded the same
way: 10,000,000 events on PostgreSQL; quick: 1,000,000), and a set of notifications with
deliveries, some dead, for the search, story and dead-letter pages.

A signed-in session (the sign-in form, as a browser), then each page alone, sequentially
on one kept-alive connection: warm-up, then N requests, p50/p99. The target is 200 ms
of server time per page.

    PYTHONPATH=$PWD .venv/bin/python bench/run.py --only s_dashboard [--quick]
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any

import httpx

from bench.common import Clarion, Procs, clarion_env, drop_db, fresh_db, start_clarion
from bench.s8_analytics import _vacuum_rollups, fold, seed_postgres, timed_gets
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
        "user": "/dashboard/users/u7",
        "system": "/dashboard/system",
        "audit": "/dashboard/audit",
    }
    out = {}
    for name, path in pages.items():
        out[name] = timed_gets(client, path, {}, 2, n)
        print(f"  {name}: {out[name]}", flush=True)
    return out


def run(procs: Procs, quick: bool, profile: bool) -> dict[str, Any]:
    total = 1_000_000 if quick else 10_000_000
    now = datetime.now(UTC)
    plain = fresh_db(DB)
    url = plain.replace("postgresql://", "postgresql+asyncpg://")
    try:
        upgrade_sync(url)
        out: dict[str, Any] = {"events": total, "target_ms": TARGET_MS}
        out["seed"] = asyncio.run(seed_postgres(plain, total, now))
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
        out["verdict"] = {
            name: "ok" if page.get("p99_ms", 1e9) <= TARGET_MS else "over"
            for name, page in out["pages"].items()
        }
        return out
    finally:
        drop_db(DB)
