"""What a feature costs S1 ingest: the same sends to a server with the feature off and to
one with it on, in pairs of blocks, compared by the server's CPU per send.

Used by S8 (the rollup follower) and S9 (a running experiment). Throughput of one
closed-loop run moves by more than these budgets on a shared 2-core machine (S8's pairs
of 15-second runs disagreed by up to 25 %), so the figure the verdict rests on is CPU
per send, which a busy neighbour slows far less than it slows a request's answer:

1. Two fresh databases and two ``clarion serve`` (one process each, PostgreSQL + Redis,
   each with its own Redis prefix): "off" and "on". The caller gives the environment
   that differs and what to set up on "on" through its API (once: it stays in the
   database). Both servers are started afresh for each of a few rounds, so that what
   differs between two processes varies between pairs instead of weighing on all alike.
2. Each gets an unmeasured warm-up of S1's sends per round, then pairs of blocks of S1's
   request (32 connections, closed loop): by default both blocks of a pair at the same
   time, so that both servers run under the same machine conditions (a server's CPU per
   send moved by up to 30 % between consecutive blocks here); or, with
   ``CLARION_BENCH_COST_MODE=alternating``, ``requests`` sends to one server at a time in
   the order off, on, on, off, ... Each block has its own users (half the sends it is
   expected to make: about 43 % of its sends are a user's first, as in S1's 15 seconds
   over 10,000 users), the same for both sides.
3. A block's CPU is every server process's utime + stime (``/proc``, ``bench.common.Usage``)
   from the first send until ``TAIL_S`` after the last answer, so the work a send leaves
   behind (the follower's fold, deliveries) is counted too. The database's share is the
   CPU of the PostgreSQL backends connected to that side's database, reported beside it.
4. Per pair: on ÷ off of CPU per send and of throughput. The result is the median over
   the pairs, with a bootstrap 95 % interval of that median and the min and max. The
   verdict is "met" when the interval's upper end is within the budget, "missed" when its
   lower end is above it, "inconclusive" otherwise.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench.common import (
    Clarion,
    Procs,
    Usage,
    clarion_env,
    cpu_seconds,
    drop_db,
    fresh_db,
    loadgen,
    psql,
    server_pids,
    start_clarion,
)

#: S1's request (bench/s1_ingest.py ``_ingest``): one user each, type ``follow``.
S1_BODY = (
    '{"user_id": "{u}", "type": "follow", "title": "Bo followed you {i}", "message": "Say hi!"}'
)
S1_TYPE = "follow"
CONCURRENCY = 32
#: After a block's last answer, how long its CPU is still counted: three polls of the
#: pipeline loop (0.5 s each), within which the follower folds what the block wrote.
TAIL_S = 1.5
#: Users of the warm-up (and of nothing else): far above any block's users.
WARMUP_OFFSET = 90_000_000

Setup = Callable[[Clarion], dict[str, Any]]
Check = Callable[[str], dict[str, Any]]


def settings(quick: bool) -> dict[str, Any]:
    """The run's shape; the environment may change it: ``CLARION_BENCH_COST_MODE``
    (``concurrent`` or ``alternating``), ``_PAIRS``, ``_SECONDS`` (a concurrent block),
    ``_REQUESTS`` (an alternating block)."""
    env = os.environ.get
    return {
        "mode": env("CLARION_BENCH_COST_MODE", "concurrent"),
        "pairs": int(env("CLARION_BENCH_COST_PAIRS", 4 if quick else 20)),
        "seconds": float(env("CLARION_BENCH_COST_SECONDS", 3 if quick else 5)),
        "requests": int(env("CLARION_BENCH_COST_REQUESTS", 2000 if quick else 4000)),
        "warmup": 1000 if quick else 2000,
        # Both servers are started afresh this many times, the pairs shared out between
        # the rounds: what differs between two server processes (where their memory
        # landed, which core they share with PostgreSQL) then varies between pairs and
        # shows in the interval, instead of weighing on every pair of one run alike.
        "rounds": int(env("CLARION_BENCH_COST_ROUNDS", 2 if quick else 4)),
    }


def measure(
    procs: Procs,
    quick: bool,
    *,
    db: str,
    budget_pct: float,
    off_env: dict[str, str],
    on_env: dict[str, str],
    setup_on: Setup | None = None,
    check: Check | None = None,
    feature: str,
) -> dict[str, Any]:
    """Measure the feature's cost (module docstring). ``off_env`` / ``on_env`` are added
    to each side's server environment, ``setup_on`` runs once against the "on" server
    before its warm-up, ``check(plain_url)`` after every block (its answer is kept with
    the block: what the block left in the database)."""
    cfg = settings(quick)
    sides: dict[str, dict[str, Any]] = {}
    blocks: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    try:
        for name, extra in (("off", off_env), ("on", on_env)):
            plain = fresh_db(f"{db}_{name}")
            env = clarion_env(
                plain.replace("postgresql://", "postgresql+asyncpg://"),
                CLARION_REDIS_PREFIX=f"clarionbench{os.getpid()}{name}",
                **extra,
            )
            server = start_clarion(procs, env, log_name=f"{db}-{name}")
            sides[name] = {
                "name": name,
                "db": f"{db}_{name}",
                "plain": plain,
                "env": env,
                "server": server,
            }
        # Once: the feature's state is in the database and outlives the server processes.
        setup = setup_on(sides["on"]["server"]) if setup_on else None
        users = 0
        rounds = max(1, min(cfg["rounds"], cfg["pairs"]))
        first_of_round = {i * cfg["pairs"] // rounds for i in range(rounds)}
        for k in range(cfg["pairs"]):
            if k in first_of_round:
                if k:
                    for name, side in sides.items():
                        procs.stop(side["server"].proc)
                        side["server"] = start_clarion(
                            procs, side["env"], key=side["server"].key, log_name=f"{db}-{name}"
                        )
                rate = _warm_up(procs, sides, cfg["warmup"], WARMUP_OFFSET + k * 100_000)
                print(f"  {feature} warm-up before pair {k + 1}: {rate}/s", flush=True)
                if not users:
                    # Half the sends a block is expected to make, so that about 43 % of
                    # its sends are a user's first (as in S1's 15 s over 10,000 users).
                    users = (
                        max(100, round(rate * cfg["seconds"] / 2))
                        if cfg["mode"] == "concurrent"
                        else cfg["requests"] // 2
                    )
                    cfg["users_per_block"] = users
            order = ("off", "on") if k % 2 == 0 else ("on", "off")
            offset = (k + 1) * 1_000_000
            if cfg["mode"] == "concurrent":
                jobs = [
                    _job(sides[o]["server"], o, 10**7, users, offset, cfg["seconds"]) for o in order
                ]
                got = dict(
                    zip(order, run_blocks(procs, [sides[o] for o in order], jobs), strict=True)
                )
            else:
                got = {}
                for o in order:
                    job = _job(sides[o]["server"], o, cfg["requests"], users, offset, 600)
                    got[o] = run_blocks(procs, [sides[o]], [job])[0]
            for o in order:
                got[o]["order"] = "first" if o == order[0] else "second"
                if check is not None:
                    got[o]["check"] = check(sides[o]["plain"])
                blocks[o].append(got[o])
            print(f"  {feature} pair {k + 1}/{cfg['pairs']} ({', '.join(order)}): {_brief(blocks)}")
    finally:
        for side in sides.values():
            procs.stop(side["server"].proc)
        for name in ("off", "on"):
            drop_db(f"{db}_{name}")
    out = summarise(blocks["off"], blocks["on"], budget_pct)
    out["method"] = method(feature, cfg)
    out["settings"] = cfg
    if setup is not None:
        out["setup_on"] = setup
    return out


def _warm_up(procs: Procs, sides: dict[str, dict[str, Any]], n: int, offset: int) -> float:
    """``n`` unmeasured sends to each server at once; the slower one's rate."""
    jobs = [_job(side["server"], name, n, n // 2, offset, 600) for name, side in sides.items()]
    return float(min(w["ok_per_s"] for w in run_blocks(procs, list(sides.values()), jobs)))


def _job(
    server: Clarion, name: str, requests: int, users: int, offset: int, seconds: float
) -> dict[str, Any]:
    """S1's sends to ``server`` in a closed loop: ``requests`` of them, or as many as
    ``seconds`` allow (the other bound is then far away)."""
    return {
        "name": name,
        "mode": "closed",
        "concurrency": CONCURRENCY,
        "warmup": 0,
        "duration": seconds,
        "max_requests": requests,
        "users": max(1, users),
        "user_offset": offset,
        "requests": [
            {
                "method": "POST",
                "url": f"{server.url}/api/v1/notifications",
                "headers": {
                    "Authorization": f"Bearer {server.key}",
                    "Content-Type": "application/json",
                },
                "body": S1_BODY,
            }
        ],
    }


def run_blocks(
    procs: Procs, sides: list[dict[str, Any]], jobs: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Run ``jobs`` (one per side, all at once in one load generator process) and return
    each side's block: its sends, and its server's and database backends' CPU from the
    first send until ``TAIL_S`` after the last answer."""
    load = os.getloadavg()[0]
    db0 = [_db_cpu(side["db"]) for side in sides]
    usages = [Usage(server_pids(side["server"].proc.pid)).start() for side in sides]
    res = loadgen(procs, {"jobs": jobs}, timeout=660)["jobs"]
    time.sleep(TAIL_S)
    for usage in usages:
        usage.stop()
    out = []
    for side, job, usage, before in zip(sides, jobs, usages, db0, strict=True):
        after = _db_cpu(side["db"])
        db_cpu = sum(c - before.get(pid, 0.0) for pid, c in after.items())
        r = res[job["name"]]
        sent = max(1, r["requests"])
        out.append(
            {
                "requests": r["requests"],
                "ok": r["ok"],
                "status": r["status"],
                "ok_per_s": r["ok_per_s"],
                "p50_ms": r["p50_ms"],
                "p99_ms": r["p99_ms"],
                "users": job["users"],
                "server_cpu_seconds": usage.cpu,
                "server_cpu_us_per_send": round(1e6 * usage.cpu / sent, 1),
                "db_cpu_us_per_send": round(1e6 * db_cpu / sent, 1),
                "server_processes": len(usage.pids),
                "loadavg_1min_before": round(load, 2),
            }
        )
    return out


def _db_cpu(db: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend connected to ``db`` (the server's pool and
    nothing else: the bench's own queries go to other databases)."""
    out: dict[int, float] = {}
    rows = psql(f"SELECT pid FROM pg_stat_activity WHERE datname = '{db}'")
    for line in rows.split():
        try:
            out[int(line)] = cpu_seconds(int(line))
        except (OSError, ValueError):  # ended meanwhile, or not readable from here
            continue
    return out


def _brief(blocks: dict[str, list[dict[str, Any]]]) -> str:
    off, on = blocks["off"][-1], blocks["on"][-1]
    return (
        f"off {off['ok_per_s']}/s {off['server_cpu_us_per_send']} us/send, "
        f"on {on['ok_per_s']}/s {on['server_cpu_us_per_send']} us/send"
    )


# --- the figures ----------------------------------------------------------------------------


def median_interval(values: list[float], *, resamples: int = 2000, seed: int = 0) -> list[float]:
    """A bootstrap 95 % interval of the median of ``values`` (percentile method,
    resampling the values with replacement; a fixed seed, so a result reproduces)."""
    rnd = random.Random(seed)
    n = len(values)
    medians = sorted(statistics.median(rnd.choices(values, k=n)) for _ in range(resamples))
    return [medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]]


def verdict(interval_pct: list[float], budget_pct: float) -> str:
    lo, hi = interval_pct
    if hi <= budget_pct:
        return "met"
    if lo > budget_pct:
        return "missed"
    return "inconclusive"


def _pct(ratio: float) -> float:
    return round(100 * (ratio - 1), 2)


def summarise(
    off: list[dict[str, Any]], on: list[dict[str, Any]], budget_pct: float
) -> dict[str, Any]:
    """The pairs (block k of each side) and their medians: CPU per send on ÷ off (the
    verdict's figure), the database's CPU per send, both together, and throughput."""
    pairs: list[dict[str, Any]] = []
    for k, (a, b) in enumerate(zip(off, on, strict=True)):
        both_off = a["server_cpu_us_per_send"] + a["db_cpu_us_per_send"]
        both_on = b["server_cpu_us_per_send"] + b["db_cpu_us_per_send"]
        pairs.append(
            {
                "pair": k + 1,
                "order": "off, on" if a["order"] == "first" else "on, off",
                "cpu_ratio": round(b["server_cpu_us_per_send"] / a["server_cpu_us_per_send"], 4),
                "db_cpu_ratio": (
                    round(b["db_cpu_us_per_send"] / a["db_cpu_us_per_send"], 4)
                    if a["db_cpu_us_per_send"]
                    else None
                ),
                "server_and_db_cpu_ratio": round(both_on / both_off, 4),
                "throughput_ratio": round(b["ok_per_s"] / a["ok_per_s"], 4),
                "off": a,
                "on": b,
            }
        )
    cpu = [p["cpu_ratio"] for p in pairs]
    tp = [p["throughput_ratio"] for p in pairs]
    both = [p["server_and_db_cpu_ratio"] for p in pairs]
    dbr = [p["db_cpu_ratio"] for p in pairs if p["db_cpu_ratio"] is not None]
    cpu_interval = [_pct(r) for r in median_interval(cpu)]
    failed = sum(b["requests"] - b["ok"] for b in off + on)
    return {
        "cpu_per_send_increase_pct": _pct(statistics.median(cpu)),
        "cpu_per_send_increase_pct_interval95": cpu_interval,
        "cpu_per_send_increase_pct_min_max": [_pct(min(cpu)), _pct(max(cpu))],
        "throughput_decrease_pct": round(-_pct(statistics.median(tp)), 2),
        "throughput_decrease_pct_interval95": sorted(
            round(-_pct(r), 2) for r in median_interval(tp)
        ),
        "throughput_decrease_pct_min_max": [round(-_pct(max(tp)), 2), round(-_pct(min(tp)), 2)],
        "db_cpu_per_send_increase_pct": _pct(statistics.median(dbr)) if dbr else None,
        "server_and_db_cpu_per_send_increase_pct": _pct(statistics.median(both)),
        "server_and_db_cpu_per_send_increase_pct_interval95": [
            _pct(r) for r in median_interval(both)
        ],
        "server_cpu_us_per_send_off": statistics.median(b["server_cpu_us_per_send"] for b in off),
        "server_cpu_us_per_send_on": statistics.median(b["server_cpu_us_per_send"] for b in on),
        "ok_per_s_off": statistics.median(b["ok_per_s"] for b in off),
        "ok_per_s_on": statistics.median(b["ok_per_s"] for b in on),
        "failed_requests": failed,
        "budget_pct": budget_pct,
        "verdict": "not measured" if failed else verdict(cpu_interval, budget_pct),
        "pairs": pairs,
    }


def method(feature: str, cfg: dict[str, Any]) -> str:
    common = (
        f"{feature}: two clarion serve (1 process each, PostgreSQL + Redis, fresh databases, "
        f"own Redis prefixes), the feature off on one and on on the other, both started "
        f"afresh {cfg['rounds']} times with the pairs shared out between the rounds, "
        f"{cfg['warmup']} unmeasured sends each per round; {cfg['pairs']} pairs of blocks of S1's "
        f"sends (POST /api/v1/notifications, type {S1_TYPE!r}, {CONCURRENCY} connections "
        f"closed loop per server, {cfg['users_per_block']} fresh users per block, the same "
        "for both sides)"
    )
    if cfg["mode"] == "concurrent":
        shape = (
            f", each pair's two blocks at the same time ({cfg['seconds']:g} s, one load "
            "generator process, so both servers run under the same machine conditions)"
        )
    else:
        shape = (
            f", {cfg['requests']} sends per block, one server at a time in the order "
            "off,on,on,off,off,on,..."
        )
    return (
        common + shape + "; per block the server processes' CPU (/proc utime+stime) from "
        f"the first send until {TAIL_S:g} s after the last answer (the follower's fold and "
        "other work a send leaves behind included), divided by the sends; per pair on/off. "
        "Verdict on CPU per send: the median of the pairs' ratios, with a bootstrap 95 % "
        "interval of that median (met: its upper end within the budget; missed: its lower "
        "end above; otherwise inconclusive). Throughput (the noisy figure on a shared "
        "machine) and the CPU of the PostgreSQL backends serving each side are reported "
        "beside it."
    )
