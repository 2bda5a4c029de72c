"""S6 workers: webhook deliveries from the PostgreSQL outbox to a local sink.

Builds on ``bench/worker_throughput.py`` (its author's scenario: seeds N webhook
deliveries through the sending service, runs the worker against a sink in its own
process until none is left undelivered, then measures raw signed POSTs with no database).
This wrapper runs it as a process of its own with a time bound, samples its CPU and peak
RSS from /proc, optionally profiles the ``clarion worker`` process it starts, and folds its
worker.json into s6_workers.json.

Setup: one real ``clarion worker`` process (``--processes 1``, concurrency 64) with
``CLARION_WORKER_BATCH_SIZE=500``: fewer, larger claim and record transactions are what a
deployment that wants throughput sets (the default of 100 costs ~15-25 % more CPU per
delivery). A second process helps only with a free core, which 2 cores shared with the
sink and PostgreSQL do not have.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
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


PROCESSES = 1
BATCH = 500


def _worker_child(parent: int) -> int | None:
    """The ``clarion worker`` process the scenario started, once it exists."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) != parent:
                continue
            cmdline = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if b"worker" in cmdline and any(part.endswith(b"clarion") for part in cmdline):
            return int(stat.parent.name)
    return None


def _run(procs: Procs, script: Any, n: int, limit: float, profile: bool) -> dict[str, Any]:
    proc = procs.spawn(
        [
            PY,
            str(script),
            "--deliveries",
            str(n),
            "--processes",
            str(PROCESSES),
            "--batch",
            str(BATCH),
        ],
        cwd=BENCH.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    spy = None
    cpu = 0.0
    peak = 0
    deadline = time.monotonic() + limit
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            cpu = cpu_seconds(proc.pid)
            peak = max(peak, rss_kib(proc.pid)[1])
        except OSError:
            break
        if profile and spy is None:
            child = _worker_child(proc.pid)
            if child is not None:  # starts once seeding is done: profile the worker itself
                spy = profiling.start(procs, child, "s6_workers", 20)
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
        "setup": f"bench/worker_throughput.py: {PROCESSES} `clarion worker` process(es) "
        f"(concurrency 64, batch {BATCH}) on PostgreSQL, aiohttp sink in another process; "
        "worker/sink CPU per delivery over the drain from /proc; the profile is the worker's",
        **inner,
        "lost": 0,  # the run only ends once every delivery is 'delivered'
        "bench_process_cpu_seconds_seeding_and_polling": round(cpu, 2),
        "process_peak_rss_kib": peak,
        "projected_seconds_for_100000": round(100_000 / rate, 1) if rate else None,
        # The worker is this scenario's server: its CPU per delivery is the figure least
        # moved by the machine (the sink's is beside it, sink_cpu_us_per_delivery).
        "server_cpu_us_per_delivery": inner.get("worker_cpu_us_per_delivery"),
        # The target is a ratio: deliveries/s over raw signed POSTs to the same sink, same
        # run, same concurrency, no database (ratio_to_raw, from worker_throughput.py).
        "targets": {
            "deliveries_per_s": 3000,
            "seconds_for_100000": 60,
            "lost": 0,
            "ratio_to_raw": 0.5,
        },
    }
    if spy is not None:
        result["profile"] = profiling.finish(procs, spy, "s6_workers")
    return result
