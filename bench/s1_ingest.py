"""S1 ingest: ``POST /notifications``, one user each, closed loop, on PostgreSQL + Redis and
on the embedded SQLite mode; then bulk sends (``user_ids`` of 1,000) on PostgreSQL."""

from __future__ import annotations

import json
import tempfile
from typing import Any

from bench import profiling
from bench.common import (
    Procs,
    Usage,
    clarion_env,
    drop_db,
    fresh_db,
    loadgen,
    server_pids,
    start_clarion,
)

DB = "clarion_bench_s1"


def _ingest(
    procs: Procs, env: dict[str, str], seconds: float, profile_name: str | None
) -> dict[str, Any]:
    server = start_clarion(procs, env)
    headers = {"Authorization": f"Bearer {server.key}", "Content-Type": "application/json"}
    one = {
        "name": "one",
        "mode": "closed",
        "concurrency": 32,
        "warmup": 2,
        "duration": seconds,
        "max_requests": int(seconds * 20_000),
        "users": 10_000,
        "requests": [
            {
                "method": "POST",
                "url": f"{server.url}/api/v1/notifications",
                "headers": headers,
                "body": '{"user_id": "{u}", "type": "follow", "title": "Bo followed you {i}",'
                ' "message": "Say hi!"}',
            }
        ],
    }
    spy = profiling.start(procs, server.proc.pid, profile_name, seconds) if profile_name else None
    usage = Usage(server_pids(server.proc.pid)).start()
    res = loadgen(procs, {"jobs": [one]})["jobs"]["one"]
    usage.stop()
    out = {**res, **usage.as_dict()}
    out["cpu_ms_per_request"] = round(1000 * usage.cpu / max(1, res["requests"] + 1), 3)
    if spy is not None:
        out["profile"] = profiling.finish(procs, spy, profile_name or "s1")
    procs.stop(server.proc)
    return out


def _bulk(procs: Procs, env: dict[str, str], seconds: float) -> dict[str, Any]:
    server = start_clarion(procs, env)
    headers = {"Authorization": f"Bearer {server.key}", "Content-Type": "application/json"}
    ids = json.dumps([f"{{u}}-{n}" for n in range(1000)])
    job = {
        "name": "bulk",
        "mode": "closed",
        "concurrency": 2,
        "warmup": 1,
        "duration": seconds,
        "max_requests": 2_000,
        "users": 20,
        "requests": [
            {
                "method": "POST",
                "url": f"{server.url}/api/v1/notifications",
                "headers": headers,
                "body": '{"user_ids": ' + ids + ', "type": "news", "title": "Dark mode {i}"}',
            }
        ],
    }
    usage = Usage(server_pids(server.proc.pid)).start()
    res = loadgen(procs, {"jobs": [job]}, timeout=seconds + 120)["jobs"]["bulk"]
    usage.stop()
    procs.stop(server.proc)
    return {
        **res,
        **usage.as_dict(),
        "recipients_per_request": 1000,
        "notifications_per_s": round(res["ok_per_s"] * 1000, 1),
        "cpu_us_per_notification": round(1e6 * usage.cpu / max(1, res["ok"] * 1000), 2),
    }


def run(procs: Procs, quick: bool, profile: bool) -> dict[str, Any]:
    seconds = 4 if quick else 15
    pg = fresh_db(DB)
    pg_async = pg.replace("postgresql://", "postgresql+asyncpg://")
    try:
        postgres = _ingest(
            procs, clarion_env(pg_async), seconds, "s1_ingest_postgres" if profile else None
        )
        # One process per core, as docs recommend for a 2-core machine (live updates
        # between the processes go over Redis).
        two = {**clarion_env(pg_async), "CLARION_WORKERS": "2"}
        postgres_2 = _ingest(procs, two, seconds, None)
        bulk = _bulk(procs, two, seconds)
    finally:
        drop_db(DB)
    with tempfile.TemporaryDirectory(prefix="clarion-bench-") as tmp:
        sqlite = _ingest(
            procs,
            clarion_env(f"sqlite+aiosqlite:///{tmp}/clarion.db", redis=False),
            seconds,
            "s1_ingest_sqlite" if profile else None,
        )
    return {
        "setup": "clarion serve (1 process, embedded worker) on PostgreSQL + Redis, the same "
        "with --workers 2 (postgres_2_processes, bulk), and on SQLite without Redis; loadgen: "
        "32 connections, closed loop, 10,000 distinct users",
        "postgres": postgres,
        "postgres_2_processes": postgres_2,
        "sqlite": sqlite,
        "bulk_postgres": bulk,
        "targets": {
            "postgres_per_s": 3000,
            "postgres_p99_ms": 25,
            "sqlite_per_s": 1500,
            "bulk_notifications_per_s": 50_000,
        },
    }
