"""This machine's ceilings, measured in the same run as Clarion: Redis PUBLISH/INCR
(``redis-benchmark``), PostgreSQL commits (``pgbench -N``) and a bare Starlette JSON
endpoint under uvicorn driven by the same load generator Clarion gets."""

from __future__ import annotations

import os
import re
import subprocess
import time
from typing import Any
from urllib.parse import urlsplit

from bench.common import (
    BENCH,
    PG_BASE,
    PY,
    REDIS_URL,
    Procs,
    Usage,
    drop_db,
    free_port,
    fresh_db,
    loadgen,
    wait_http,
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
        out = subprocess.run(
            ["pgbench", "-N", "-T", str(seconds), "-c", "8", "-j", "2", url],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    finally:
        drop_db(DB)
    m = re.search(r"tps = ([\d.]+)", out.stdout)
    lat = re.search(r"latency average = ([\d.]+) ms", out.stdout)
    return {
        "tps": float(m.group(1)) if m else None,
        "latency_avg_ms": float(lat.group(1)) if lat else None,
        "clients": 8,
        "seconds": seconds,
        "server": PG_BASE,
    }


def starlette(procs: Procs, quick: bool) -> dict[str, Any]:
    port = free_port()
    proc = procs.spawn(
        [PY, str(BENCH / "peers" / "starlette_hello.py"), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/hello"
    try:
        wait_http(url, proc)
        seconds = 5 if quick else 10
        job = {
            "name": "hello",
            "mode": "closed",
            "concurrency": 32,
            "warmup": 1,
            "duration": seconds,
            "max_requests": 500_000,
            "requests": [{"method": "GET", "url": url}],
        }
        usage = Usage([proc.pid]).start()
        res = loadgen(procs, {"jobs": [job]})["jobs"]["hello"]
        usage.stop()
    finally:
        procs.stop(proc)
    return {**res, **usage.as_dict(), "server": "uvicorn + Starlette, 1 process"}


def run(procs: Procs, quick: bool, profile: bool) -> dict[str, Any]:
    return {
        "redis": redis(procs, quick),
        "pgbench": pgbench(quick),
        "starlette": starlette(procs, quick),
    }
