"""This machine's ceilings, measured in the same run as Clarion: Redis PUBLISH/INCR
(``redis-benchmark``), PostgreSQL commits (``pgbench -N``), a bare Starlette JSON
endpoint under uvicorn driven by the same load generator Clarion gets, and a bare
``websockets.broadcast()`` server's CPU per delivery (the fan-out ceiling)."""

from __future__ import annotations

import os
import re
import subprocess
import time
from typing import Any
from urllib.parse import urlsplit

from bench import capacity, fanout_peers
from bench.common import (
    PG_BASE,
    REDIS_URL,
    Procs,
    Usage,
    drop_db,
    fresh_db,
    loadgen,
    postgres_cpu_seconds,
    start_starlette_hello,
)

DB = "clarion_bench_pgbench"


def _redis_bench(host: str, port: str, n: int, *command: str) -> float | None:
    out = subprocess.run(
        ["redis-benchmark", "-h", host, "-p", port, "-n", str(n), "-c", "50", "-q", *command],
        capture_output=True,
        text=True,
        timeout=120,
    )
    m = re.findall(r"([\d.]+) requests per second", out.stdout.replace("\r", "\n"))
    return float(m[-1]) if m else None


def redis(procs: Procs, quick: bool) -> dict[str, Any]:
    """INCR, and PUBLISH with one subscriber listening (as Clarion's hub has one per node)."""
    r = urlsplit(REDIS_URL)
    host, port = r.hostname or "127.0.0.1", str(r.port or 6379)
    n = 50_000 if quick else 200_000
    rates: dict[str, Any] = {"requests": n, "clients": 50}
    rates["incr_per_s"] = _redis_bench(host, port, n, "INCR", "clarionbench:calib:counter")
    channel = f"clarionbench:calib:{os.getpid()}"
    sub = procs.spawn(
        ["redis-cli", "-h", host, "-p", port, "SUBSCRIBE", channel],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.3)
        rates["publish_per_s"] = _redis_bench(host, port, n, "PUBLISH", channel, "hello")
    finally:
        procs.stop(sub)
    subprocess.run(
        ["redis-cli", "-h", host, "-p", port, "DEL", "clarionbench:calib:counter"],
        capture_output=True,
        timeout=10,
    )
    return rates


def pgbench(quick: bool) -> dict[str, Any]:
    url = fresh_db(DB)
    try:
        subprocess.run(
            ["pgbench", "-i", "-q", "-s", "5", url], capture_output=True, timeout=300, check=True
        )
        seconds = 10
        cpu0 = postgres_cpu_seconds()
        out = subprocess.run(
            ["pgbench", "-N", "-T", str(seconds), "-c", "8", "-j", "2", url],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        cpu1 = postgres_cpu_seconds()
    finally:
        drop_db(DB)
    m = re.search(r"tps = ([\d.]+)", out.stdout)
    lat = re.search(r"latency average = ([\d.]+) ms", out.stdout)
    tx = re.search(r"number of transactions actually processed: (\d+)", out.stdout)
    cpu = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
    transactions = int(tx.group(1)) if tx else None
    return {
        "tps": float(m.group(1)) if m else None,
        "transactions": transactions,
        # Every PostgreSQL process's CPU over the run (backends, WAL writer, checkpointer):
        # what one commit costs the database, to set beside what a send costs it.
        "server_cpu_seconds": None if cpu is None else round(cpu, 3),
        "server_cpu_us_per_tx": (
            round(1e6 * cpu / transactions, 1) if cpu is not None and transactions else None
        ),
        "latency_avg_ms": float(lat.group(1)) if lat else None,
        "clients": 8,
        "seconds": seconds,
        "server": PG_BASE,
    }


def starlette(procs: Procs, quick: bool) -> dict[str, Any]:
    proc, url = start_starlette_hello(procs)
    try:
        seconds = 5 if quick else 10
        job = {
            "name": "hello",
            "mode": "closed",
            "concurrency": 32,
            "warmup": 0,
            "duration": 1,
            "max_requests": 500_000,
            "requests": [{"method": "GET", "url": url}],
        }
        # Warm up in a run of its own, so the measured run's server CPU is that of the
        # requests it counts (server_cpu_us_per_request, the ratio's denominator).
        loadgen(procs, {"jobs": [job]})
        usage = Usage([proc.pid]).start()
        res = loadgen(procs, {"jobs": [{**job, "duration": seconds}]})["jobs"]["hello"]
        usage.stop()
        closed = res["ok_per_s"] or 1000.0
        measure = capacity.rate_measure(
            procs, {"method": "GET", "url": url}, seconds=2 if quick else 3, users=1
        )
        cap = capacity.search(
            measure,
            objective_p99_ms=25,
            start=closed / 2,
            max_rate=closed * 1.5,
            growth=1.4,
            resolution=1.1,
            max_steps=7 if quick else 10,
        )
    finally:
        procs.stop(proc)
    return {
        **res,
        **usage.as_dict(),
        "server_cpu_us_per_request": round(1e6 * usage.cpu / max(1, res["requests"]), 2),
        "capacity": cap,
        "server": "uvicorn + Starlette, 1 process",
    }


def run(procs: Procs, quick: bool, profile: bool) -> dict[str, Any]:
    return {
        "redis": redis(procs, quick),
        "pgbench": pgbench(quick),
        "starlette": starlette(procs, quick),
        # The fan-out ceiling: CPU per delivery of a bare websockets.broadcast() server
        # with S3's users and rounds (S3 also measures it beside Clarion, with a frame
        # of the size Clarion's own was in that run).
        "broadcast": fanout_peers.websockets_ceiling(procs, quick),
    }
