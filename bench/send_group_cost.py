"""The fixed CPU cost of one group commit: single sends at a steady, modest open-loop rate
(150/s by default), where each group commit of ``SendingService`` holds one send, so the
server's CPU per send is the per-group cost (planning reads, the writes, the commit) plus
the request's own.

    python -m bench.send_group_cost [--rate 150] [--seconds 15] [--blocks 3] [--profile]
        [--against PATH]

One ``clarion serve`` (one process, PostgreSQL + Redis, a fresh database) gets S1's request
(``bench/s1_ingest.py``: one of 10,000 users per send) open loop at ``--rate`` for
``--seconds``, ``--blocks`` times after an unmeasured warm-up; a block's CPU is the server
processes' utime + stime over it (``bench.common.Usage``), PostgreSQL's beside it, and
the group commits it took (``/metrics``): CPU per send falls when groups hold more than
one send, which a busy machine brings about, so sends per group are reported too. The
baseline of the same run is bare Starlette (``bench/peers/starlette_hello.py``, as in
``bench/calibrate.py``) at the same rate, open loop, and closed loop as the calibration
runs it: CPU per request. The server's idle CPU (its background loops) is measured over a
quiet window and reported per second, so it can be told apart from the sends'. With
``--profile`` one more block runs under py-spy (``bench/profiling.py``), written to
``results/<name>.profile.txt``. The figures are printed as JSON and written to
``results/<name>.json`` (``--name``, default ``send_group_cost``).

A change is compared with ``--against PATH`` (another checkout of Clarion, e.g. ``git
archive`` of the commit before it): a second server runs that code on its own database,
the blocks alternate between the two (this, other; other, this; ...) so both see the same
machine, and the per-pair ratios this ÷ other of CPU per send and per group are reported
(median, min, max).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

if __name__ == "__main__":  # run as a script: the repository root is not on the path yet
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import profiling
from bench.common import (
    RESULTS,
    Procs,
    Usage,
    clarion_env,
    drop_db,
    fresh_db,
    git_commit,
    loadgen,
    postgres_cpu_seconds,
    server_pids,
    start_clarion,
    start_starlette_hello,
)
from bench.s1_ingest import _one

DB = "clarion_bench_send_group"
USERS = 10_000
IDLE_S = 3.0


def _rate_job(request: dict[str, Any], rate: float, seconds: float, users: int) -> dict[str, Any]:
    return {
        "name": "rate",
        "mode": "rate",
        "rate": rate,
        "concurrency": 64,
        "warmup": 0,
        "duration": seconds,
        "max_requests": int(rate * seconds) + 10,
        "users": users,
        "requests": [request],
    }


def _groups(metrics_url: str | None) -> tuple[float, float] | None:
    """(group commits, sends in them) so far, from the server's ``/metrics``
    (``clarion_send_group_size``)."""
    if metrics_url is None:
        return None
    found: dict[str, float] = {}
    for line in httpx.get(metrics_url, timeout=10).text.splitlines():
        for key in ("count", "sum"):
            if line.startswith(f"clarion_send_group_size_{key} "):
                found[key] = float(line.split()[1])
    return found.get("count", 0.0), found.get("sum", 0.0)


def _block(
    procs: Procs,
    pids: list[int],
    job: dict[str, Any],
    pg: bool = False,
    metrics_url: str | None = None,
) -> dict[str, Any]:
    """One load generator run, with the CPU of ``pids`` (and PostgreSQL's) over it, and
    with ``metrics_url`` the group commits it took: CPU per send falls as groups grow
    (a busy machine makes them grow), so the sends per group are reported beside it."""
    g0 = _groups(metrics_url)
    usage = Usage(pids).start()
    pg0 = postgres_cpu_seconds() if pg else None
    res = loadgen(procs, {"jobs": [job]}, timeout=job["duration"] + 120)["jobs"][job["name"]]
    usage.stop()
    pg1 = postgres_cpu_seconds() if pg else None
    g1 = _groups(metrics_url)
    n = max(1, res["ok"])
    out = {
        "ok": res["ok"],
        "status": res["status"],
        "ok_per_s": res["ok_per_s"],
        "p50_ms": res["p50_ms"],
        "p99_ms": res["p99_ms"],
        "server_cpu_seconds": usage.cpu,
        "server_cpu_us_per_request": round(1e6 * usage.cpu / n, 1),
    }
    if pg0 is not None and pg1 is not None:
        out["postgres_cpu_us_per_request"] = round(1e6 * (pg1 - pg0) / n, 1)
    if g0 is not None and g1 is not None:
        groups = max(1.0, g1[0] - g0[0])
        out["group_commits"] = int(g1[0] - g0[0])
        out["sends_per_group"] = round((g1[1] - g0[1]) / groups, 3)
        out["server_cpu_us_per_group"] = round(1e6 * usage.cpu / groups, 1)
    return out


def _idle_cpu_per_s(pids: list[int]) -> float:
    usage = Usage(pids).start()
    time.sleep(IDLE_S)
    usage.stop()
    return round(1e6 * usage.cpu / IDLE_S, 1)


def starlette(procs: Procs, rate: float, seconds: float) -> dict[str, Any]:
    """Bare Starlette's CPU per request: open loop at ``rate`` and closed loop (32
    connections, as ``bench/calibrate.py``)."""
    proc, url = start_starlette_hello(procs)
    request = {"method": "GET", "url": url}
    try:
        closed = {
            "name": "closed",
            "mode": "closed",
            "concurrency": 32,
            "warmup": 0,
            "duration": 1,
            "max_requests": 500_000,
            "requests": [request],
        }
        loadgen(procs, {"jobs": [closed]})  # warm-up
        open_loop = _block(procs, [proc.pid], _rate_job(request, rate, seconds, 1))
        closed_loop = _block(procs, [proc.pid], {**closed, "duration": 5})
    finally:
        procs.stop(proc)
    return {"open_loop": open_loop, "closed_loop": closed_loop}


def _side(procs: Procs, label: str, pythonpath: str | None) -> dict[str, Any]:
    """A fresh database and a ``clarion serve`` on it; ``pythonpath``: the checkout of
    Clarion it runs (default: the one this script runs from)."""
    db = f"{DB}_{label}"
    plain = fresh_db(db)
    env = clarion_env(plain.replace("postgresql://", "postgresql+asyncpg://"))
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    server = start_clarion(procs, env, log_name=f"send-group-{label}")
    return {
        "label": label,
        "db": db,
        "server": server,
        "pids": server_pids(server.proc.pid),
        "request": _one(server.url, server.key),
        "metrics": f"{server.url}/metrics",
        "runs": [],
    }


def _summary(side: dict[str, Any]) -> dict[str, Any]:
    runs = side["runs"]

    def med(key: str) -> float | None:
        values = [r[key] for r in runs if r.get(key) is not None]
        return round(statistics.median(values), 1) if values else None

    return {
        "server_cpu_us_per_send": med("server_cpu_us_per_request"),
        "postgres_cpu_us_per_send": med("postgres_cpu_us_per_request"),
        "sends_per_group": med("sends_per_group"),
        "server_cpu_us_per_group": med("server_cpu_us_per_group"),
        "p50_ms": med("p50_ms"),
        "p99_ms": med("p99_ms"),
        "idle_cpu_us_per_s": side.get("idle"),
        "blocks": runs,
    }


def clarion(
    procs: Procs,
    rate: float,
    seconds: float,
    blocks: int,
    profile: bool,
    name: str,
    against: str | None = None,
) -> dict[str, Any]:
    """This checkout's server, and with ``against`` a second one running that checkout,
    measured in alternating blocks (this, other; other, this; ...) so that both see the
    same machine conditions."""
    sides: list[dict[str, Any]] = []
    try:
        sides.append(_side(procs, "this", None))
        if against is not None:
            sides.append(_side(procs, "against", against))
        for side in sides:  # warm-up, then the idle CPU of its background loops
            job = _rate_job(side["request"], rate, 5, USERS)
            loadgen(procs, {"jobs": [job]})
            side["idle"] = _idle_cpu_per_s(side["pids"])
        for k in range(blocks):
            for side in sides if k % 2 == 0 else sides[::-1]:
                job = _rate_job(side["request"], rate, seconds, USERS)
                side["runs"].append(_block(procs, side["pids"], job, True, side["metrics"]))
        prof = None
        if profile:
            this = sides[0]
            spy = profiling.start(procs, this["server"].proc.pid, name, seconds)
            _block(procs, this["pids"], _rate_job(this["request"], rate, seconds, USERS))
            prof = profiling.finish(procs, spy, name)
    finally:
        for side in sides:
            procs.stop(side["server"].proc)
            drop_db(side["db"])
    out = {**_summary(sides[0]), "profile": prof}
    if against is not None:
        other = sides[1]
        out["against"] = {"pythonpath": against, **_summary(other)}
        pairs: dict[str, list[float]] = {"per_send": [], "per_group": []}
        for a, b in zip(sides[0]["runs"], other["runs"], strict=True):
            pairs["per_send"].append(
                a["server_cpu_us_per_request"] / max(1e-9, b["server_cpu_us_per_request"])
            )
            if a.get("server_cpu_us_per_group") and b.get("server_cpu_us_per_group"):
                pairs["per_group"].append(
                    a["server_cpu_us_per_group"] / b["server_cpu_us_per_group"]
                )
        out["this_over_against"] = {
            f"cpu_{k}": {
                "median": round(statistics.median(v), 3),
                "min": round(min(v), 3),
                "max": round(max(v), 3),
            }
            for k, v in pairs.items()
            if v
        }
    return out


def run(
    procs: Procs,
    rate: float,
    seconds: float,
    blocks: int,
    profile: bool,
    name: str,
    against: str | None = None,
) -> dict[str, Any]:
    base = starlette(procs, rate, seconds)
    got = clarion(procs, rate, seconds, blocks, profile, name, against)
    open_us = base["open_loop"]["server_cpu_us_per_request"]
    closed_us = base["closed_loop"]["server_cpu_us_per_request"]

    def figures(got: dict[str, Any]) -> dict[str, Any]:
        per_send = got["server_cpu_us_per_send"] or 0.0
        idle_per_send = (got["idle_cpu_us_per_s"] or 0.0) / rate
        return {
            "ratio_to_starlette_same_rate": round(per_send / max(1e-9, open_us), 2),
            "ratio_to_starlette_closed_loop": round(per_send / max(1e-9, closed_us), 2),
            "server_cpu_us_per_send": per_send,
            "server_cpu_us_per_send_less_idle": round(per_send - idle_per_send, 1),
            "sends_per_group": got["sends_per_group"],
            "server_cpu_us_per_group": got["server_cpu_us_per_group"],
            "p50_ms": got["p50_ms"],
            "p99_ms": got["p99_ms"],
        }

    out = figures(got)
    if against is not None:
        out["against"] = figures(got["against"])
        out["this_over_against"] = got["this_over_against"]
    return {
        **out,
        "starlette_cpu_us_per_request": {"same_rate": open_us, "closed_loop": closed_us},
        "clarion": got,
        "starlette": base,
        "setup": f"clarion serve (1 process, PostgreSQL + Redis, fresh database), S1's "
        f"request to {USERS:,} users open loop at {rate:g}/s for {seconds:g} s x {blocks} "
        "(median); bare Starlette at the same rate and closed loop (32 connections)"
        + ("" if against is None else f"; against {against} in alternating blocks"),
        "commit": git_commit(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=150.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="one more block under py-spy")
    parser.add_argument("--name", default="send_group_cost", help="results/<name>.json")
    parser.add_argument(
        "--against",
        metavar="PATH",
        help="also a server running the Clarion checkout at PATH, in alternating blocks",
    )
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    procs = Procs()
    try:
        out = run(
            procs,
            args.rate,
            args.seconds,
            max(1, args.blocks),
            args.profile,
            args.name,
            args.against,
        )
    finally:
        procs.stop_all()
    (RESULTS / f"{args.name}.json").write_text(json.dumps(out, indent=2) + "\n")
    text = out.get("clarion", {}).get("profile")
    brief = {k: v for k, v in out.items() if k not in ("clarion", "starlette")}
    print(json.dumps(brief, indent=2))
    if text:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
