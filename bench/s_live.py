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

from bench import profiling
from bench.common import (
    BENCH,
    PEERS_PY,
    Procs,
    Usage,
    WsDriver,
    clarion_env,
    drop_db,
    free_port,
    fresh_db,
    loadgen,
    percentiles,
    ratio,
    start_clarion,
    wait_http,
)

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


def _drivers(
    procs: Procs, protocol: str, url: str, users: int, per_driver: int, prefix: str = "u"
) -> list[WsDriver]:
    drivers = []
    for first in range(0, users, per_driver):
        spec = {
            "protocol": protocol,
            "url": url,
            "first": first,
            "count": min(per_driver, users - first),
            "user_prefix": prefix,
        }
        drivers.append(WsDriver(procs, spec))
    return drivers


def _connect(drivers: list[WsDriver]) -> dict[str, Any]:
    t0 = time.perf_counter()
    answers = [d.read(timeout=600) for d in drivers]
    seconds = time.perf_counter() - t0
    connected = sum(a["connected"] for a in answers)
    return {
        "connected": connected,
        "failed": sum(a["failed"] for a in answers),
        "connect_seconds": round(seconds, 2),
        "connects_per_s": round(connected / max(1e-9, seconds), 1),
    }


# --- S2 -------------------------------------------------------------------------------------


def _latency_run(
    procs: Procs,
    drivers: list[WsDriver],
    send_url: str,
    body: str | None,
    headers: dict[str, str],
    users: int,
    rate: int,
    seconds: float,
) -> dict[str, Any]:
    for d in drivers:
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
    per = [d.command(f"wait {sent['ok'] // len(drivers)} 30") for d in drivers]
    stats = [d.command("stats") for d in drivers]
    received = sum(s["received"] for s in stats)
    merged = _merge_latency(per)
    return {
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


def s2(procs: Procs, quick: bool, profile: bool) -> dict[str, Any]:
    users = 1000 if quick else 5000
    seconds = 4 if quick else 15
    rate = 500
    result: dict[str, Any] = {"connected_users": users, "target_rate_per_s": rate}
    env = _pg_env()
    try:
        server = start_clarion(procs, env)
        drivers = _drivers(procs, "clarion", server.ws, users, users)
        result["clarion_connect"] = _connect(drivers)
        headers = {"Authorization": f"Bearer {server.key}", "Content-Type": "application/json"}
        spy = profiling.start(procs, server.proc.pid, "s2_latency", seconds) if profile else None
        usage = Usage([server.proc.pid]).start()
        result["clarion"] = _latency_run(
            procs,
            drivers,
            f"{server.url}/api/v1/notifications",
            '{"user_id": "{u}", "type": "follow", "title": "Bo followed you {i}"}',
            headers,
            users,
            rate,
            seconds,
        )
        result["clarion"].update(usage.stop().as_dict())
        if spy is not None:
            result["clarion"]["profile"] = profiling.finish(procs, spy, "s2_latency")
        for d in drivers:
            d.close()
        procs.stop(server.proc)
    finally:
        drop_db(DB)
    if PEERS_PY.exists():
        url, proc = _start_sio(procs)
        drivers = _drivers(
            procs, "socketio", url.replace("http", "ws") + "/socket.io/", users, users
        )
        result["socketio_connect"] = _connect(drivers)
        usage = Usage([proc.pid]).start()
        result["socketio"] = _latency_run(
            procs, drivers, f"{url}/send?user={{u}}", None, {}, users, rate, seconds
        )
        result["socketio"].update(usage.stop().as_dict())
        for d in drivers:
            d.close()
        procs.stop(proc)
    result["targets"] = {"p50_ms": 5, "p99_ms": 25}
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


def _fanout_rounds(
    drivers: list[WsDriver],
    pids: list[int],
    users: int,
    rounds: int,
    fire: Any,
) -> dict[str, Any]:
    last: list[float] = []
    first: list[float] = []
    cpu: list[float] = []
    received: list[int] = []
    for _ in range(rounds):
        for d in drivers:
            d.command("reset")
        usage = Usage(pids).start()
        t0 = time.time()
        fire()
        stats = [d.command(f"wait {users // len(drivers)} 30") for d in drivers]
        usage.stop()
        got = [s for s in stats if s["received"]]
        received.append(sum(s["received"] for s in stats))
        if got:
            last.append(max(s["last_wall"] for s in got) - t0)
            first.append(min(s["first_wall"] for s in got) - t0)
        cpu.append(usage.cpu)
        time.sleep(0.5)
    lp = percentiles(last)
    return {
        "rounds": rounds,
        "received_per_round": received,
        "lost_total": sum(max(0, users - r) for r in received),
        "first_receipt_p50_ms": percentiles(first)["p50_ms"],
        "last_receipt_p50_ms": lp["p50_ms"],
        "last_receipt_p99_ms": lp["p99_ms"],
        "server_cpu_seconds_per_round": [round(c, 3) for c in cpu],
        "server_cpu_us_per_delivery": round(1e6 * sum(cpu) / max(1, sum(received)), 2),
    }


def s3(procs: Procs, quick: bool, profile: bool) -> dict[str, Any]:
    users = 2000 if quick else 10_000
    rounds = 3 if quick else 5
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
        drivers = _drivers(procs, "clarion", server.ws, users, per_driver)
        result["clarion_connect"] = _connect(drivers)
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
        fan = _fanout_rounds(
            drivers,
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
        for d in drivers:
            d.close()
        procs.stop(server.proc)
    finally:
        drop_db(DB)
    if PEERS_PY.exists():
        url, proc = _start_sio(procs)
        drivers = _drivers(
            procs, "socketio", url.replace("http", "ws") + "/socket.io/", users, per_driver
        )
        result["socketio_connect"] = _connect(drivers)
        result["socketio"] = _fanout_rounds(
            drivers, [proc.pid], users, rounds, lambda: httpx.post(f"{url}/broadcast", timeout=60)
        )
        result["socketio"]["server_rss_kib"] = Usage([proc.pid]).stop().rss_kib
        for d in drivers:
            d.close()
        procs.stop(proc)
        result["socketio_over_clarion_cpu_per_delivery"] = ratio(
            result["socketio"]["server_cpu_us_per_delivery"],
            result["clarion"]["server_cpu_us_per_delivery_fanout_only"],
            2,
        )
    result["targets"] = {
        "server_cpu_us_per_delivery": 25,
        "last_receipt_p50_ms": 400,
        "last_receipt_p99_ms": 1000,
        "api_p99_ms_during_broadcast": 50,
        "socketio_over_clarion": 2,
    }
    return result


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
        result.update(_connect(drivers))
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
