"""S9 experiments: what a running A/B experiment costs S1 ingest, and how fast its
results answer with 1,000,000 assigned users (docs/experiments.md, "Speed").

1. *Assignment cost* (``bench/feature_cost.py``, shared with S8's rollup cost): S1's
   sends (type ``follow``) to a server with an experiment running on that type and to
   one without, in alternating blocks of the same number of sends; the verdict is on the
   server's CPU per send. "On" creates and starts the experiment through its API (2
   variants 50/50, one overriding the title, no holdout: a held-out send writes one
   event instead of a notification, which would make "on" cheaper and hide the cost).
   Every sent user is assigned on their first send and found in the server's memory on
   later ones, as the service does.
2. *Results.* An experiment created and started through the API (10 % holdout, 2
   variants 50/50); then 1,000,000 rows of ``experiment_assignments`` (quick: 100,000;
   SQLite 100,000, quick 20,000) loaded with COPY (SQLite: ``executemany``), each user's
   variant from the real ``clarion.domain.experiment_assignment.assign``, read by 10 % of
   control's users and 12 % of the variant's, and ``experiment_arms`` set to exactly
   those counts, as the service and the follower would have left them. A fresh
   ``clarion serve`` then answers ``GET .../ab-tests/{id}/results`` sequentially on one
   kept-alive connection (20 warm-up, 200 measured; quick 10 and 60), beside the HTTP
   floor (an authenticated ``unread-count``, as S8 measures it) and ``GET .../ab-tests/{id}``
   (the experiment's row alone). In the bench process, for scale: the service's
   ``results`` without HTTP, and the statistics alone (no database).

    PYTHONPATH=$PWD .venv/bin/python bench/run.py --only s9 [--quick]
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import feature_cost
from bench.common import (
    Clarion,
    Procs,
    clarion_env,
    drop_db,
    fresh_db,
    percentiles,
    ratio,
    start_clarion,
)
from bench.s8_analytics import timed_gets
from clarion.domain.experiment_assignment import HOLDOUT, assign
from clarion.domain.experiments import ExperimentConfig
from clarion.services import experiments as experiment_service
from clarion.store import experiments as experiment_store
from clarion.store.db import Database

S1_DB = "clarion_bench_s9_s1"
DB = "clarion_bench_s9"
API = "/api/v1/notifications/ab-tests"
S1_TYPE = feature_cost.S1_TYPE
TARGET_COST = 0.03
TARGET_P99_MS = 50
#: Share of each arm's users who read (holdout users receive nothing to read).
READ_SHARE = {"control": 0.10, "short": 0.12, HOLDOUT: 0.0}


def experiment_body(target_type: str, holdout: float) -> dict[str, Any]:
    return {
        "name": f"S9 bench on {target_type}",
        "target_type": target_type,
        "variants": [
            {"key": "control", "weight": 50},
            {"key": "short", "weight": 50, "title": "Someone new follows you"},
        ],
        "holdout": holdout,
        "metric": "read",
        "baseline": 0.1,
        "mde": 0.2,
    }


def create_and_start(server: Clarion, target_type: str, holdout: float) -> dict[str, Any]:
    """Create and start an experiment through the API; its JSON as ``start`` returned it."""
    headers = {"Authorization": f"Bearer {server.key}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        r = client.post(API, json=experiment_body(target_type, holdout))
        if r.status_code != 201:
            raise RuntimeError(f"create experiment: {r.status_code} {r.text[:500]}")
        exp_id = str(r.json()["id"])
        r = client.post(f"{API}/{exp_id}/start")
        if r.status_code != 200 or r.json().get("status") != "running":
            raise RuntimeError(f"start experiment: {r.status_code} {r.text[:500]}")
        return dict(r.json())


# --- 1. what assignment costs S1 ----------------------------------------------------------


def assignment_cost(procs: Procs, quick: bool) -> dict[str, Any]:
    """S1's sends with and without an experiment running on their type
    (``bench/feature_cost.py``): 2 variants 50/50, one overriding the title, no holdout
    (a held-out send writes one event instead of a notification, which would make "on"
    cheaper and hide the cost), created and started through the "on" server's API."""
    return feature_cost.measure(
        procs,
        quick,
        db=S1_DB,
        budget_pct=100 * TARGET_COST,
        off_env={},
        on_env={},
        setup_on=_setup_experiment,
        check=lambda url: asyncio.run(_written(url)),
        feature="a running experiment on the sent type",
    )


def _setup_experiment(server: Clarion) -> dict[str, Any]:
    exp = create_and_start(server, S1_TYPE, 0)
    return {"experiment_id": str(exp["id"]), "status": exp["status"]}


async def _written(url: str) -> dict[str, Any]:
    """What the sends so far wrote: notifications, how many carry a variant, users
    assigned (on "off": none)."""
    conn = await asyncpg.connect(url)
    try:
        return {
            "notifications": await conn.fetchval("SELECT count(*) FROM notifications"),
            "notifications_with_variant": await conn.fetchval(
                "SELECT count(*) FROM notifications WHERE variant IS NOT NULL"
            ),
            "users_assigned": await conn.fetchval("SELECT count(*) FROM experiment_assignments"),
        }
    finally:
        await conn.close()


# --- 2. results with many assigned users --------------------------------------------------


def assignments(
    experiment: dict[str, Any], users: int, now: datetime, seed: int = 9
) -> tuple[list[tuple[Any, ...]], dict[str, dict[str, int]]]:
    """``users`` assignment rows (experiment_id, user_id, variant, assigned_at, read_at),
    variants by the real ``assign``, and the arm counters they add up to."""
    config = ExperimentConfig.from_json(experiment)
    weights, holdout = config.weights(), config.holdout / 100.0
    exp_id = str(experiment["id"])
    rnd = random.Random(seed)
    rows: list[tuple[Any, ...]] = []
    counts: dict[str, dict[str, int]] = {}
    for i in range(users):
        uid = f"u{i}"
        variant = assign(exp_id, uid, weights, holdout)
        at = now - timedelta(seconds=7 * 86400 * rnd.random())
        read = at + timedelta(minutes=30) if rnd.random() < READ_SHARE[variant] else None
        rows.append((exp_id, uid, variant, at, read))
        c = counts.setdefault(variant, {"users": 0, "read": 0})
        c["users"] += 1
        c["read"] += read is not None
    return rows, counts


async def load_postgres(
    url: str, experiment: dict[str, Any], users: int, now: datetime
) -> dict[str, Any]:
    t0 = time.perf_counter()
    rows, counts = assignments(experiment, users, now)
    gen_s = time.perf_counter() - t0
    exp_id = str(experiment["id"])
    conn = await asyncpg.connect(url)
    try:
        t1 = time.perf_counter()
        await conn.copy_records_to_table(
            "experiment_assignments",
            records=rows,
            columns=["experiment_id", "user_id", "variant", "assigned_at", "read_at"],
        )
        copy_s = time.perf_counter() - t1
        async with conn.transaction():
            await conn.execute("DELETE FROM experiment_arms WHERE experiment_id = $1", exp_id)
            await conn.executemany(
                "INSERT INTO experiment_arms (experiment_id, variant, users, read) "
                "VALUES ($1, $2, $3, $4)",
                [(exp_id, v, c["users"], c["read"]) for v, c in sorted(counts.items())],
            )
        await conn.execute("VACUUM ANALYZE experiment_assignments")
        await conn.execute("VACUUM ANALYZE experiment_arms")
        stored = await conn.fetchval(
            "SELECT count(*) FROM experiment_assignments WHERE experiment_id = $1", exp_id
        )
    finally:
        await conn.close()
    return {
        "assignments": stored,
        "arms": counts,
        "generate_seconds": round(gen_s, 1),
        "copy_seconds": round(copy_s, 1),
    }


def load_sqlite(path: str, experiment: dict[str, Any], users: int, now: datetime) -> dict[str, Any]:
    t0 = time.perf_counter()
    rows, counts = assignments(experiment, users, now)
    gen_s = time.perf_counter() - t0
    fmt = "%Y-%m-%d %H:%M:%S.%f"  # as SQLAlchemy stores a DateTime in SQLite
    exp_id = str(experiment["id"])
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        t1 = time.perf_counter()
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO experiment_assignments "
            "(experiment_id, user_id, variant, assigned_at, read_at) VALUES (?, ?, ?, ?, ?)",
            [
                (e, u, v, a.strftime(fmt), None if r is None else r.strftime(fmt))
                for e, u, v, a, r in rows
            ],
        )
        conn.execute("DELETE FROM experiment_arms WHERE experiment_id = ?", (exp_id,))
        conn.executemany(
            "INSERT INTO experiment_arms (experiment_id, variant, users, read) VALUES (?, ?, ?, ?)",
            [(exp_id, v, c["users"], c["read"]) for v, c in sorted(counts.items())],
        )
        conn.execute("COMMIT")
        load_s = time.perf_counter() - t1
        conn.execute("ANALYZE")
        stored = conn.execute(
            "SELECT count(*) FROM experiment_assignments WHERE experiment_id = ?", (exp_id,)
        ).fetchone()[0]
    finally:
        conn.close()
    return {
        "assignments": stored,
        "arms": counts,
        "generate_seconds": round(gen_s, 1),
        "insert_seconds": round(load_s, 1),
    }


def measure_results(server: Clarion, exp_id: str, quick: bool) -> dict[str, Any]:
    warmup, n = (10, 60) if quick else (20, 200)
    headers = {"Authorization": f"Bearer {server.key}"}
    out: dict[str, Any] = {"warmup_requests": warmup, "measured_requests": n}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
        out["http_floor_unread_count"] = timed_gets(
            client, "/api/v1/notifications/unread-count", {"user_id": "u1"}, warmup, n
        )
        out["experiment_get"] = timed_gets(client, f"{API}/{exp_id}", {}, warmup, n)
        out["results"] = timed_gets(client, f"{API}/{exp_id}/results", {}, warmup, n)
        last = client.get(f"{API}/{exp_id}/results").json()
    out["last_results"] = {
        "arms": {
            a["variant"]: {"users": a["users"], "successes": a["successes"], "rate": a["rate"]}
            for a in last.get("arms", [])
        },
        "srm": last.get("srm"),
        "verdict": {k: v for k, v in (last.get("verdict") or {}).items() if k != "adjusted_p"},
    }
    return out


async def in_process(url: str, exp_id: str, n: int) -> dict[str, Any]:
    """For scale, in the bench process: the service's ``results`` (its two reads and the
    statistics, no HTTP), and the statistics alone on counters already read."""
    db = Database(url)
    try:
        service = experiment_service.ExperimentService(db)
        times: list[float] = []
        for k in range(n + 10):
            t0 = time.perf_counter()
            await service.results(exp_id)
            if k >= 10:
                times.append(time.perf_counter() - t0)
        async with db.connect() as conn:
            row = await experiment_store.get(conn, exp_id)
            counted = await experiment_store.arms_of(conn, exp_id)
        assert row is not None
        stats_times: list[float] = []
        for k in range(n + 10):
            t0 = time.perf_counter()
            experiment_service._results(row, counted)
            if k >= 10:
                stats_times.append(time.perf_counter() - t0)
    finally:
        await db.dispose()
    return {
        "service_results": {"runs": n, **percentiles(times)},
        "statistics_only": {"runs": n, **percentiles(stats_times)},
    }


def verdict(measured: dict[str, Any]) -> dict[str, Any]:
    m = measured.get("results", {})
    p99 = m.get("p99_ms")
    ok = m.get("status", {}).get("200", 0) == m.get("requests") and p99 is not None
    floor = measured.get("http_floor_unread_count", {}).get("p50_ms")
    return {
        "p99_ms": p99,
        "target_p99_ms": TARGET_P99_MS,
        "results_p50_over_http_floor_p50": ratio(m.get("p50_ms"), floor, 2),
        "verdict": "not measured" if not ok else ("met" if p99 <= TARGET_P99_MS else "missed"),
    }


def _results_part(
    procs: Procs,
    quick: bool,
    env: dict[str, str],
    users: int,
    load: Any,
    db_url: str,
    log_name: str,
) -> dict[str, Any]:
    """Create and start the experiment through one server, load the assignments with it
    stopped, then measure through a fresh server (same key)."""
    now = datetime.now(UTC)
    setup = start_clarion(procs, env, log_name=f"{log_name}-setup")
    try:
        exp = create_and_start(setup, "promo", 10)
    finally:
        procs.stop(setup.proc)
    exp_id = str(exp["id"])
    out: dict[str, Any] = {"assigned_users": users, "experiment_id": exp_id}
    out["load"] = load(exp, users, now)
    print(f"  {log_name} load: {out['load']}", flush=True)
    if out["load"]["assignments"] != users:
        raise RuntimeError(f"loaded {out['load']['assignments']} assignments, not {users}")
    server = start_clarion(procs, env, key=setup.key, log_name=log_name)
    try:
        out["endpoints"] = measure_results(server, exp_id, quick)
    finally:
        procs.stop(server.proc)
    out["in_process"] = asyncio.run(in_process(db_url, exp_id, 60 if quick else 200))
    out["verdict"] = verdict(out["endpoints"])
    arms = out["endpoints"]["last_results"]["arms"]
    out["results_match_loaded_counts"] = all(
        arms.get(v, {}).get("users") == c["users"] for v, c in out["load"]["arms"].items()
    )
    print(f"  {log_name}: {out['verdict']} {out['in_process']}", flush=True)
    return out


def postgres(procs: Procs, quick: bool) -> dict[str, Any]:
    users = 100_000 if quick else 1_000_000
    plain = fresh_db(DB)
    url = plain.replace("postgresql://", "postgresql+asyncpg://")
    try:
        return _results_part(
            procs,
            quick,
            clarion_env(url),
            users,
            lambda exp, n, now: asyncio.run(load_postgres(plain, exp, n, now)),
            url,
            "s9-postgres",
        )
    finally:
        drop_db(DB)


def sqlite(procs: Procs, quick: bool) -> dict[str, Any]:
    users = 20_000 if quick else 100_000
    with tempfile.TemporaryDirectory(prefix="clarion-bench-s9-") as tmp:
        path = str(Path(tmp) / "clarion.db")
        url = f"sqlite+aiosqlite:///{path}"
        return _results_part(
            procs,
            quick,
            clarion_env(url, redis=False),
            users,
            lambda exp, n, now: load_sqlite(path, exp, n, now),
            url,
            "s9-sqlite",
        )


def run(procs: Procs, quick: bool, profile: bool) -> dict[str, Any]:
    parts = os.environ.get("CLARION_BENCH_S9_PARTS", "s1,postgres,sqlite").split(",")
    result: dict[str, Any] = {
        "setup": "assignment cost: bench/feature_cost.py (S1 sends with/without a running "
        "experiment on their type, alternating blocks, CPU per send); results: experiment "
        "created and started through the API, assignments loaded with the real assign(), "
        "arm counters set to match, sequential GETs on one kept-alive connection to a fresh "
        "clarion serve (1 process)",
        "targets": {"assignment_cost_fraction": TARGET_COST, "results_p99_ms": TARGET_P99_MS},
        "read_share": READ_SHARE,
    }
    for name, fn in (("s1", assignment_cost), ("postgres", postgres), ("sqlite", sqlite)):
        if name not in parts:
            continue
        print(f"  -- s9 {name}", flush=True)
        try:
            out = fn(procs, quick)
            if name == "s1":
                result["assignment_cost"] = out
            else:
                result[name] = out
        except Exception as exc:  # one part failing keeps the others' figures
            import traceback

            result[f"{name}_error"] = f"{exc!r}: {traceback.format_exc()[-1500:]}"
            print(result[f"{name}_error"], flush=True)
    return result
