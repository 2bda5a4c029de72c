"""S9 experiments: what a running A/B experiment costs S1 ingest, and how fast its
results answer with 1,000,000 assigned users (issue 14, "Speed").

1. *Assignment cost.* S1's single-process PostgreSQL ingest (``s1_ingest._ingest``, the
   function and parameters S8 uses) with and without an experiment running on the type
   S1 sends (``follow``), each on a fresh database, in pairs of alternating order (ABBA).
   Both modes first start a ``clarion serve`` of their own for setup; "with" creates and
   starts the experiment there through the API (2 variants 50/50, one overriding the
   title, no holdout: a held-out send writes one event instead of a notification, which
   would make "with" cheaper and hide the cost). Every sent user is then assigned on
   their first send and looked up on every later one, as the service does.
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
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import s1_ingest
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
#: The type bench/s1_ingest.py sends (its body: ``"type": "follow"``).
S1_TYPE = "follow"
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
    """S1's single-process PostgreSQL ingest (same function, same parameters as S1 and
    S8) with and without a running experiment on its type, a fresh database each run, in
    the order on, off, off, on (full: then on, off again)."""
    seconds = 4 if quick else 15
    order = [True, False, False, True] + ([] if quick else [True, False])
    runs: list[dict[str, Any]] = []
    for with_experiment in order:
        plain = fresh_db(S1_DB)
        url = plain.replace("postgresql://", "postgresql+asyncpg://")
        try:
            env = clarion_env(url)
            # The same setup in both modes: a server migrates the database and is stopped;
            # "with" creates and starts the experiment through it.
            setup = start_clarion(procs, env, log_name="s9-setup")
            try:
                exp = create_and_start(setup, S1_TYPE, 0) if with_experiment else None
            finally:
                procs.stop(setup.proc)
            load = os.getloadavg()[0]
            r = s1_ingest._ingest(procs, env, seconds, None)
            written = asyncio.run(_written(plain, None if exp is None else str(exp["id"])))
        finally:
            drop_db(S1_DB)
        run = {
            "experiment": with_experiment,
            "ok_per_s": r["ok_per_s"],
            "requests": r["requests"],
            "ok": r["ok"],
            "status": r["status"],
            "p50_ms": r["p50_ms"],
            "p99_ms": r["p99_ms"],
            "cpu_ms_per_request": r["cpu_ms_per_request"],
            "loadavg_1min_before": round(load, 2),
            **written,
        }
        print(f"  s1 experiment={'on' if with_experiment else 'off'}: {run}", flush=True)
        runs.append(run)
    return {
        "setup": "bench/s1_ingest.py _ingest: clarion serve, 1 process, PostgreSQL + Redis, "
        f"32 connections closed loop, 10,000 users, type {S1_TYPE!r}, {seconds} s after 2 s "
        "warm-up, a fresh database per run; 'on': an experiment running on that type, "
        "2 variants 50/50 (one overriding the title), no holdout, created and started "
        "through the API before the measured server starts; order "
        + ", ".join("on" if o else "off" for o in order),
        **cost_summary(runs),
    }


async def _written(url: str, experiment_id: str | None) -> dict[str, Any]:
    """What the runs wrote: notifications, how many carry a variant, users assigned."""
    conn = await asyncpg.connect(url)
    try:
        out: dict[str, Any] = {
            "notifications": await conn.fetchval("SELECT count(*) FROM notifications"),
            "notifications_with_variant": await conn.fetchval(
                "SELECT count(*) FROM notifications WHERE variant IS NOT NULL"
            ),
        }
        if experiment_id is not None:
            out["users_assigned"] = await conn.fetchval(
                "SELECT count(*) FROM experiment_assignments WHERE experiment_id = $1",
                experiment_id,
            )
            out["arm_users"] = {
                r["variant"]: r["users"]
                for r in await conn.fetch(
                    "SELECT variant, users FROM experiment_arms WHERE experiment_id = $1",
                    experiment_id,
                )
            }
        return out
    finally:
        await conn.close()


def cost_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Throughput with the experiment over without (means, and per adjacent pair), CPU per
    send, and a verdict that is "inconclusive" when the pairs disagree by more than the
    target itself (then the machine's noise is bigger than what is measured), as S8's."""
    on = [r for r in runs if r["experiment"]]
    off = [r for r in runs if not r["experiment"]]
    on_rate = statistics.mean(r["ok_per_s"] for r in on)
    off_rate = statistics.mean(r["ok_per_s"] for r in off)
    cost = round(1 - on_rate / off_rate, 4) if off_rate else None
    pairs: list[float] = []
    for a, b in zip(runs[0::2], runs[1::2], strict=False):
        on_run, off_run = (a, b) if a["experiment"] else (b, a)
        pair = ratio(on_run["ok_per_s"], off_run["ok_per_s"], 4)
        if pair is not None:
            pairs.append(pair)
    spread = round(max(pairs) - min(pairs), 4) if len(pairs) > 1 else None
    cpu_on = statistics.mean(r["cpu_ms_per_request"] for r in on)
    cpu_off = statistics.mean(r["cpu_ms_per_request"] for r in off)
    failed = sum(r["requests"] - r["ok"] for r in runs)
    if cost is None or failed:
        verdict = "not measured"
    elif spread is not None and spread > TARGET_COST:
        verdict = "inconclusive"
    else:
        verdict = "met" if cost <= TARGET_COST else "missed"
    return {
        "runs": runs,
        "on_per_s": round(on_rate, 1),
        "off_per_s": round(off_rate, 1),
        "on_over_off": ratio(on_rate, off_rate, 4),
        "on_over_off_per_pair": pairs,
        "pair_spread": spread,
        "cost_fraction": cost,
        "cpu_ms_per_request_on": round(cpu_on, 3),
        "cpu_ms_per_request_off": round(cpu_off, 3),
        "cpu_cost_fraction": round(cpu_on / cpu_off - 1, 4) if cpu_off else None,
        "failed_requests": failed,
        "target_cost_fraction": TARGET_COST,
        "verdict": verdict,
    }


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
        "setup": "assignment cost: S1 single-process PostgreSQL ingest with/without a running "
        "experiment on its type, ABBA; results: experiment created and started through the "
        "API, assignments loaded with the real assign(), arm counters set to match, "
        "sequential GETs on one kept-alive connection to a fresh clarion serve (1 process)",
        "targets": {"assignment_cost_fraction": TARGET_COST, "results_p99_ms": TARGET_P99_MS},
        "read_share": READ_SHARE,
    }
    for name, fn in (("s1", assignment_cost), ("postgres", postgres), ("sqlite", sqlite)):
        if name not in parts:
            continue
        print(f"  -- s9 {name}", flush=True)
        try:
            result["s1_assignment_cost" if name == "s1" else name] = fn(procs, quick)
        except Exception as exc:  # one part failing keeps the others' figures
            import traceback

            result[f"{name}_error"] = f"{exc!r}: {traceback.format_exc()[-1500:]}"
            print(result[f"{name}_error"], flush=True)
    return result
