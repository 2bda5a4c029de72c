"""S6 workers: webhook deliveries from the PostgreSQL outbox to a local sink.

Builds on ``bench/worker_throughput.py`` (its author's scenario: seeds N webhook
deliveries through the sending service, runs the worker against a sink in its own
process until none is left undelivered, then measures raw signed POSTs with no database).
This wrapper runs it as a process of its own with a time bound, samples its CPU and peak
RSS from /proc, optionally profiles it, and folds its worker.json into s6_workers.json.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from bench import profiling
from bench.common import BENCH, PY, RESULTS, Procs, cpu_seconds, rss_kib


def run(procs: Procs, quick: bool, profile: bool) -> dict[str, Any]:
    n = 1_000 if quick else 10_000
    limit = 240 if quick else 600
    script = BENCH / "worker_throughput.py"
    # worker_throughput.py writes bench/results/worker.json, its author's file: put it back
    own = RESULTS / "worker.json"
    previous = own.read_text() if own.exists() else None
    try:
        return _run(procs, script, n, limit, profile)
    finally:
        if previous is not None:
            own.write_text(previous)


def _run(procs: Procs, script: Any, n: int, limit: float, profile: bool) -> dict[str, Any]:
    proc = procs.spawn(
        [PY, str(script), "--deliveries", str(n)],
        cwd=BENCH.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    spy = profiling.start(procs, proc.pid, "s6_workers", 20) if profile else None
    cpu = 0.0
    peak = 0
    deadline = time.monotonic() + limit
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            cpu = cpu_seconds(proc.pid)
            peak = max(peak, rss_kib(proc.pid)[1])
        except OSError:
            break
        time.sleep(0.5)
    if proc.poll() is None:
        procs.stop(proc)
        return {"error": f"worker_throughput.py did not finish {n} deliveries in {limit} s"}
    _out, err = proc.communicate()
    procs.started.remove(proc)
    if proc.returncode != 0:
        return {"error": err[-2000:]}
    inner = json.loads((RESULTS / "worker.json").read_text())
    rate = float(inner["deliveries_per_second"])
    result: dict[str, Any] = {
        "setup": "bench/worker_throughput.py: 1 worker (concurrency 64, batch 100) in one "
        "process on PostgreSQL, aiohttp sink in another; CPU is the worker process's",
        **inner,
        "lost": 0,  # the run only ends once every delivery is 'delivered'
        "process_cpu_seconds_incl_seeding": round(cpu, 2),
        "process_peak_rss_kib": peak,
        "projected_seconds_for_100000": round(100_000 / rate, 1) if rate else None,
        "targets": {"deliveries_per_s": 3000, "seconds_for_100000": 60, "lost": 0},
    }
    if spy is not None:
        result["profile"] = profiling.finish(procs, spy, "s6_workers")
    return result
