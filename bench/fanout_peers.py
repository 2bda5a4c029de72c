"""Fan-out rounds and the plain broadcast servers Clarion's fan-out (S3) is compared with.

A round: every driver resets, the server is told to send one message to all N connected
clients, and the round ends when every client has it (or 30 s pass). Server CPU per
delivery = the ``/proc`` CPU delta of the server PIDs over the rounds / deliveries.

The peers are the floor of a WebSocket fan-out in their runtime, with nothing else in the
process: ``bench/peers/ws_broadcast.py`` (the ``websockets`` library's own
``broadcast()``: one frame encoded once, written to each connection) and
``bench/peers/node_ws/server.js`` (node ``ws``, pinned in its package-lock.json). Both
send one text frame of the size Clarion's fan-out message has in the same run (a
``notification.created`` and an ``unread_count`` frame, written as one message).
``websockets_ceiling`` is also the calibration's ``broadcast`` ceiling.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    BENCH,
    PEERS_PY,
    PY,
    Procs,
    Usage,
    WsDriver,
    free_port,
    percentiles,
    wait_http,
)

NODE_DIR = BENCH / "peers" / "node_ws"
# Size of one Clarion fan-out message (both frames) with the bench's send body, measured
# by S3's drivers (``bytes_per_message``); used when the calibration runs the peer alone.
CLARION_MESSAGE_BYTES = 280


def sizes(quick: bool) -> tuple[int, int]:
    """(connected users, rounds): S3's, so every fan-out figure is over the same N."""
    return (2000, 3) if quick else (10_000, 5)


def drivers(
    procs: Procs, protocol: str, url: str, users: int, per_driver: int, prefix: str = "u"
) -> list[WsDriver]:
    out = []
    for first in range(0, users, per_driver):
        spec = {
            "protocol": protocol,
            "url": url,
            "first": first,
            "count": min(per_driver, users - first),
            "user_prefix": prefix,
        }
        out.append(WsDriver(procs, spec))
    return out


def connect(ds: list[WsDriver]) -> dict[str, Any]:
    t0 = time.perf_counter()
    answers = [d.read(timeout=600) for d in ds]
    seconds = time.perf_counter() - t0
    connected = sum(a["connected"] for a in answers)
    return {
        "connected": connected,
        "failed": sum(a["failed"] for a in answers),
        "connect_seconds": round(seconds, 2),
        "connects_per_s": round(connected / max(1e-9, seconds), 1),
    }


def fanout_rounds(
    ds: list[WsDriver], pids: list[int], users: int, rounds: int, fire: Callable[[], Any]
) -> dict[str, Any]:
    last: list[float] = []
    first: list[float] = []
    cpu: list[float] = []
    received: list[int] = []
    frames = size = 0
    for _ in range(rounds):
        for d in ds:
            d.command("reset")
        usage = Usage(pids).start()
        t0 = time.time()
        fire()
        stats = [d.command(f"wait {users // len(ds)} 30") for d in ds]
        usage.stop()
        got = [s for s in stats if s["received"]]
        received.append(sum(s["received"] for s in stats))
        frames += sum(s["frames"] for s in stats)
        size += sum(s.get("bytes", 0) for s in stats)
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
        "bytes_per_message": round(size / frames) if size and frames else None,
    }


def _peer_run(
    procs: Procs, argv: list[str], cwd: Path, users: int, rounds: int, frame_bytes: int
) -> dict[str, Any]:
    port = free_port()
    proc = procs.spawn(
        [*argv, str(port)], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/healthz", proc)
        ds = drivers(procs, "plain", url.replace("http", "ws") + "/ws", users, users // 2)
        try:
            result: dict[str, Any] = {"connected_users": users, "connect": connect(ds)}

            def fire() -> None:
                r = httpx.get(f"{url}/broadcast?size={frame_bytes}", timeout=60)
                r.raise_for_status()

            result.update(fanout_rounds(ds, [proc.pid], users, rounds, fire))
            result["server_rss_kib"] = Usage([proc.pid]).stop().rss_kib
            result["frame_bytes"] = frame_bytes
        finally:
            for d in ds:
                d.close()
    finally:
        procs.stop(proc)
    return result


def websockets_ceiling(
    procs: Procs, quick: bool, frame_bytes: int = CLARION_MESSAGE_BYTES
) -> dict[str, Any]:
    """A bare ``websockets.broadcast()`` server under S3's users and rounds:
    ``{"server_cpu_us_per_delivery": ..., "last_receipt_p50_ms": ..., ...}``."""
    py = PEERS_PY if PEERS_PY.exists() else Path(PY)
    users, rounds = sizes(quick)
    result = _peer_run(
        procs,
        [str(py), str(BENCH / "peers" / "ws_broadcast.py")],
        BENCH,
        users,
        rounds,
        frame_bytes,
    )
    version = subprocess.run(
        [str(py), "-c", "import websockets; print(websockets.__version__)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    result["server"] = f"websockets {version.stdout.strip()} broadcast(), one process"
    return result


def node_ws(procs: Procs, quick: bool, frame_bytes: int = CLARION_MESSAGE_BYTES) -> dict[str, Any]:
    """The node ``ws`` peer under S3's users and rounds, or why it was not measured."""
    node = shutil.which("node")
    pkg = NODE_DIR / "node_modules" / "ws" / "package.json"
    if node is None or not pkg.exists():
        return {
            "not_measured": "node or bench/peers/node_ws/node_modules missing (make bench-setup)"
        }
    users, rounds = sizes(quick)
    result = _peer_run(procs, [node, "server.js"], NODE_DIR, users, rounds, frame_bytes)
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
    ws_version = json.loads(pkg.read_text())["version"]
    result["server"] = f"node {version.stdout.strip()}, ws {ws_version}, one process"
    return result
