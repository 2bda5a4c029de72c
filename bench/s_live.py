"""Live delivery: S2 latency (commit -> WebSocket receipt under a steady send rate),
S3 fan-out (one send to N connected users), S4 idle connections held (RSS each).

Clarion runs as ``clarion serve`` on PostgreSQL + Redis; python-socketio (room emit and
room broadcast, under uvicorn) is the peer, driven by the same client driver process.
Latency is ``client receipt time - the frame's ts`` (commit time for Clarion, emit time
for the peer), one machine, one clock.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from typing import Any

import httpx

from bench import fanout_peers, profiling
from bench.capacity import search
from bench.common import (
    BENCH,
    PEERS_PY,
    RESULTS,
    Procs,
    Usage,
    WsDriver,
    clarion_env,
    cpu_seconds,
    drop_db,
    free_port,
    fresh_db,
    loadgen,
    ratio,
    start_clarion,
    wait_http,
)
from bench.fanout_peers import connect, drivers, fanout_rounds

DB = "clarion_bench_live"


def _pg_env() -> dict[str, str]:
    url = fresh_db(DB).replace("postgresql://", "postgresql+asyncpg://")
    return clarion_env(url)


def _start_sio(procs: Procs) -> tuple[str, subprocess.Popen[Any]]:
    port = free_port()
    proc = procs.spawn(
        [str(PEERS_PY), str(BENCH / "peers" / "sio_server.py"), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz", proc)
    return url, proc


# --- S2 -------------------------------------------------------------------------------------


def _latency_run(
    procs: Procs,
    ds: list[WsDriver],
    send_url: str,
    body: str | None,
    headers: dict[str, str],
    users: int,
    rate: int,
    seconds: float,
    wait_s: float = 30,
) -> dict[str, Any]:
    for d in ds:
        d.command("reset")
    job = {
        "name": "send",
        "mode": "rate",
        "rate": rate,
        "concurrency": 256,
        "duration": seconds,
        "max_requests": int(rate * seconds),
        "users": users,
        "requests": [{"method": "POST", "url": send_url, "headers": headers, "body": body}],
    }
    sent = loadgen(procs, {"jobs": [job]})["jobs"]["send"]
    per = [d.command(f"wait {sent['ok'] // len(ds)} {wait_s}") for d in ds]
    stats = [d.command("stats") for d in ds]
    received = sum(s["received"] for s in stats)
    merged = _merge_latency(per)
    return {
        "rate_per_s": rate,
        "sends_ok": sent["ok"],
        "send_rate_achieved_per_s": sent["ok_per_s"],
        "send_http_p99_ms": sent["p99_ms"],
        "received": received,
        "lost": max(0, sent["ok"] - received),
        **merged,
    }


def _merge_latency(stats: list[dict[str, Any]]) -> dict[str, Any]:
    """Drivers report percentiles each; the bench quotes the worst driver's (conservative)."""
    out: dict[str, Any] = {}
    for key in ("p50_ms", "p95_ms", "p99_ms", "max_ms"):
        vals = [s[key] for s in stats if s.get(key) is not None]
        out[key] = max(vals) if vals else None
    return out


def _quiet(pid: int, limit: float = 20) -> float:
    """Wait until the server is idle (<= 4 % of a core over half a second): a step leaves
    work behind it (the embedded worker's jobs for the sends, frames still being written)
    that would otherwise be measured as the next step's. Returns the seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        before = cpu_seconds(pid)
        time.sleep(0.5)
        if cpu_seconds(pid) - before <= 0.02:
            break
    return round(time.monotonic() - t0, 1)


def _starlette_capacity() -> float | None:
    """Bare Starlette's capacity at the same objective, from this run's calibration."""
    try:
        cal = json.loads((RESULTS / "calibration.json").read_text())
        return float(cal["starlette"]["capacity"]["rate_per_s"])
    except (OSError, KeyError, TypeError, ValueError):
        return None


def s2(procs: Procs, quick: bool, profile: bool) -> dict[str, Any]:
    """Capacity at p99 <= 25 ms commit -> receipt with N users connected, then the latency
    and server CPU per send at half that capacity, then socket.io at that same rate."""
    users = 1000 if quick else 5000
    seconds = 4 if quick else 15
    step_s = 3 if quick else 8
    objective = 25
    result: dict[str, Any] = {"connected_users": users}
    env = _pg_env()
    body = '{"user_id": "{u}", "type": "follow", "title": "Bo followed you {i}"}'
    try:
        server = start_clarion(procs, env)
        ds = drivers(procs, "clarion", server.ws, users, users)
        result["clarion_connect"] = connect(ds)
        headers = {"Authorization": f"Bearer {server.key}", "Content-Type": "application/json"}
        send_url = f"{server.url}/api/v1/notifications"

        def step(offered: float) -> dict[str, Any]:
            rate = max(1, round(offered))
            quiet = _quiet(server.proc.pid)
            usage = Usage([server.proc.pid]).start()
            run = _latency_run(procs, ds, send_url, body, headers, users, rate, step_s, 5)
            cpu = usage.stop().cpu
            keys = ("p50_ms", "p99_ms", "send_http_p99_ms", "lost")
            out = {"ok_per_s": run["send_rate_achieved_per_s"], **{k: run[k] for k in keys}}
            per_send = round(1e6 * cpu / max(1, run["sends_ok"]), 1)
            return {**out, "server_cpu_us_per_send": per_send, "quiet_wait_s": quiet}

        # Not counted: the first sends of a fresh server open its database connections and
        # fill its statement caches, which would be the first step's p99.
        warmup = _latency_run(procs, ds, send_url, body, headers, users, 250, 2, 5)
        capacity = search(
            step,
            objective,
            start=250,
            growth=2.0,
            resolution=1.15,
            max_rate=20_000,
            budget_s=55 if quick else 120,
        )
        capacity["warmup"] = {k: warmup[k] for k in ("rate_per_s", "p50_ms", "p99_ms")}
        rate = max(1, round((capacity["rate_per_s"] or capacity["steps"][0]["rate_per_s"]) / 2))
        quiet = _quiet(server.proc.pid)
        spy = profiling.start(procs, server.proc.pid, "s2_latency", seconds) if profile else None
        usage = Usage([server.proc.pid]).start()
        half = _latency_run(procs, ds, send_url, body, headers, users, rate, seconds)
        half.update(usage.stop().as_dict(), quiet_wait_s=quiet)
        half["server_cpu_us_per_send"] = round(
            1e6 * half["server_cpu_seconds"] / max(1, half["sends_ok"]), 1
        )
        if spy is not None:
            half["profile"] = profiling.finish(procs, spy, "s2_latency")
        keys = ("rate_per_s", "p50_ms", "p99_ms", "server_cpu_us_per_send")
        result["clarion"] = {
            **half,
            "capacity": capacity,
            "at_half_capacity": {k: half[k] for k in keys},
        }
        starlette = _starlette_capacity()
        result["clarion"]["capacity_over_starlette"] = ratio(capacity["rate_per_s"], starlette)
        for d in ds:
            d.close()
        procs.stop(server.proc)
    finally:
        drop_db(DB)
    if PEERS_PY.exists():
        url, proc = _start_sio(procs)
        ds = drivers(procs, "socketio", url.replace("http", "ws") + "/socket.io/", users, users)
        result["socketio_connect"] = connect(ds)
        usage = Usage([proc.pid]).start()
        sio = _latency_run(procs, ds, f"{url}/send?user={{u}}", None, {}, users, rate, seconds)
        sio.update(usage.stop().as_dict())
        sio["at_same_rate"] = {k: sio[k] for k in ("rate_per_s", "p50_ms", "p99_ms")}
        result["socketio"] = sio
        for d in ds:
            d.close()
        procs.stop(proc)
        result["clarion_p99_over_socketio_at_same_rate"] = ratio(
            result["clarion"]["p99_ms"], sio["p99_ms"], 2
        )
    result["targets"] = {
        "capacity_objective_p99_ms": objective,
        "capacity_over_starlette": 0.3,
        "p99_over_socketio_at_same_rate": 2,
    }
    return result


# --- S3 -------------------------------------------------------------------------------------


async def _post_all(url: str, headers: dict[str, str], bodies: list[str]) -> list[int]:
    async with httpx.AsyncClient(timeout=60) as client:
        rs = await asyncio.gather(*(client.post(url, content=b, headers=headers) for b in bodies))
    return [r.status_code for r in rs]


def _chunks(prefix: str, users: int, size: int = 1000) -> list[str]:
    bodies = []
    for start in range(0, users, size):
        ids = [f"{prefix}{n}" for n in range(start, min(users, start + size))]
        bodies.append(
            json.dumps({"user_ids": ids, "type": "news", "title": "We shipped dark mode"})
        )
    return bodies


def s3(procs: Procs, quick: bool, profile: bool) -> dict[str, Any]:
    users, rounds = fanout_peers.sizes(quick)
    per_driver = users // 2
    result: dict[str, Any] = {"connected_users": users}
    env = _pg_env()
    try:
        server = start_clarion(procs, env)
        headers = {"Authorization": f"Bearer {server.key}", "Content-Type": "application/json"}
        send_url = f"{server.url}/api/v1/notifications"
        pid = server.proc.pid
        # Baseline: the same 10 sends to users nobody is connected as; what is left after
        # subtracting it is the cost of the live fan-out itself.
        base_cpu = []
        for r in range(rounds):
            usage = Usage([pid]).start()
            codes = asyncio.run(_post_all(send_url, headers, _chunks(f"x{r}-", users)))
            base_cpu.append(usage.stop().cpu)
            assert all(c == 202 for c in codes), codes
        ds = drivers(procs, "clarion", server.ws, users, per_driver)
        result["clarion_connect"] = connect(ds)
        probe = procs.spawn(
            [
                *_loadgen_cmd(
                    {
                        "jobs": [
                            {
                                "name": "probe",
                                "mode": "rate",
                                "rate": 50,
                                "duration": rounds * 2.5 + 2,
                                "requests": [
                                    {
                                        "method": "GET",
                                        "url": f"{server.url}/api/v1/notifications/"
                                        "unread-count?user_id=probe",
                                        "headers": headers,
                                    }
                                ],
                            }
                        ]
                    }
                )
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        spy = profiling.start(procs, pid, "s3_fanout", rounds * 2) if profile else None
        bodies = _chunks("u", users)
        fan = fanout_rounds(
            ds,
            [pid],
            users,
            rounds,
            lambda: asyncio.run(_post_all(send_url, headers, bodies)),
        )
        out, _ = probe.communicate(timeout=120)
        procs.started.remove(probe)
        probe_res = json.loads(out.strip().splitlines()[-1])["jobs"]["probe"]
        base = sum(base_cpu) / len(base_cpu)
        fan["baseline_cpu_seconds_per_round_no_listeners"] = round(base, 3)
        marginal = [c - base for c in fan["server_cpu_seconds_per_round"]]
        fan["server_cpu_us_per_delivery_fanout_only"] = round(
            1e6 * sum(marginal) / max(1, sum(fan["received_per_round"])), 2
        )
        fan["frames_per_delivery"] = 2  # notification.created + unread_count
        fan["api_probe_during_broadcasts"] = {
            k: probe_res[k] for k in ("requests", "ok", "p50_ms", "p99_ms", "max_ms")
        }
        rss = Usage([pid]).stop()
        fan["server_rss_kib"] = rss.rss_kib
        if spy is not None:
            fan["profile"] = profiling.finish(procs, spy, "s3_fanout")
        result["clarion"] = fan
        for d in ds:
            d.close()
        procs.stop(server.proc)
    finally:
        drop_db(DB)
    if PEERS_PY.exists():
        url, proc = _start_sio(procs)
        ds = drivers(
            procs, "socketio", url.replace("http", "ws") + "/socket.io/", users, per_driver
        )
        result["socketio_connect"] = connect(ds)
        result["socketio"] = fanout_rounds(
            ds, [proc.pid], users, rounds, lambda: httpx.post(f"{url}/broadcast", timeout=60)
        )
        result["socketio"]["server_rss_kib"] = Usage([proc.pid]).stop().rss_kib
        for d in ds:
            d.close()
        procs.stop(proc)
        result["socketio_over_clarion_cpu_per_delivery"] = ratio(
            result["socketio"]["server_cpu_us_per_delivery"],
            result["clarion"]["server_cpu_us_per_delivery_fanout_only"],
            2,
        )
    _fanout_peers(procs, quick, result)
    result["targets"] = {
        "server_cpu_us_per_delivery": 25,
        "last_receipt_p50_ms": 400,
        "last_receipt_p99_ms": 1000,
        "api_p99_ms_during_broadcast": 50,
        "socketio_over_clarion": 2,
        "clarion_over_websockets_broadcast": 1.5,
        "clarion_over_node_ws": 2,
    }
    return result


def _fanout_peers(procs: Procs, quick: bool, result: dict[str, Any]) -> None:
    """The plain broadcast servers, sending a frame the size of Clarion's message."""
    size = result["clarion"].get("bytes_per_message") or fanout_peers.CLARION_MESSAGE_BYTES
    ours = result["clarion"]["server_cpu_us_per_delivery_fanout_only"]
    for name, run in (
        ("websockets_broadcast", fanout_peers.websockets_ceiling),
        ("node_ws", fanout_peers.node_ws),
    ):
        result[name] = run(procs, quick, size)
        peer = result[name].get("server_cpu_us_per_delivery")
        result[f"clarion_over_{name}_cpu_per_delivery"] = ratio(ours, peer, 2)


def _loadgen_cmd(spec: dict[str, Any]) -> list[str]:
    from bench.common import PY

    return [PY, str(BENCH / "loadgen.py"), json.dumps(spec)]


# --- S4 -------------------------------------------------------------------------------------


def s4(procs: Procs, quick: bool, profile: bool) -> dict[str, Any]:
    """Idle authenticated connections spread over 2 serve processes (one node, sharing
    PostgreSQL and Redis) and 2 driver processes: 20,000 open files per process."""
    total = 2000 if quick else 20_000
    hold = 3 if quick else 10
    servers_n = 2
    env = _pg_env()
    result: dict[str, Any] = {"target_connections": total, "server_processes": servers_n}
    try:
        first = start_clarion(procs, env, log_name="s4")
        servers = [first] + [
            start_clarion(procs, env, key=first.key, log_name="s4") for _ in range(servers_n - 1)
        ]
        pids = [s.proc.pid for s in servers]
        time.sleep(1)
        before = Usage(pids).stop()
        share = total // servers_n
        drivers = [
            WsDriver(
                procs,
                {"url": s.ws, "first": i * share, "count": share, "connect_concurrency": 100},
            )
            for i, s in enumerate(servers)
        ]
        result.update(connect(drivers))
        time.sleep(hold)
        after = Usage(pids).stop()
        open_now = sum(d.command("stats")["open"] for d in drivers)
        result["open_after_hold"] = open_now
        result["hold_seconds"] = hold
        result["server_rss_kib_before"] = before.rss_kib
        result["server_rss_kib_after"] = after.rss_kib
        result["server_peak_rss_kib"] = after.peak_rss_kib
        result["rss_kib_per_connection"] = round(
            (after.rss_kib - before.rss_kib) / max(1, open_now), 2
        )
        if profile:
            # what holding costs at rest: sample one server for a few seconds
            spy = profiling.start(procs, pids[0], "s4_connections", 5)
            result["idle_profile"] = profiling.finish(procs, spy, "s4_connections")
        for d in drivers:
            d.close()
        for s in servers:
            procs.stop(s.proc)
    finally:
        drop_db(DB)
    result["targets"] = {"connections": 20_000, "rss_kib_per_connection": 20}
    return result
