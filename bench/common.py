"""Shared plumbing of the bench: processes it starts (and only those), /proc sampling,
scratch PostgreSQL databases, user tokens, and result files.

Every process the bench starts is tracked by PID in ``Procs`` and ended by PID, never by
name. Load generators run as their own processes (``bench/loadgen.py``) so they never
share an event loop or a core's time slice accounting with the server they measure.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
PEERS_PY = BENCH / ".venv-peers" / "bin" / "python"
PY = sys.executable
PG_ADMIN = os.environ.get("CLARION_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
PG_BASE = PG_ADMIN.rsplit("/", 1)[0]
REDIS_URL = os.environ.get("CLARION_BENCH_REDIS", "redis://127.0.0.1:6379/0")
SECRET = "bench-secret-" + "b" * 40
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def dirty_files() -> list[str]:
    """Uncommitted changes under clarion/ at run time: the tree is shared with other work,
    so a result says exactly which code it measured (HEAD plus these files)."""
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--", "clarion"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return []
    return [line[3:] for line in out.stdout.splitlines() if line.strip()]


def user_token(user: str, ttl: float = 7200) -> str:
    """A user token as ``POST /users/{id}/token`` mints it, signed with the bench secret."""
    now = time.time()
    claims = {"sub": user, "typ": "user", "iss": "clarion", "iat": int(now), "exp": now + ttl}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    """p50/p95/p99/max in milliseconds of values given in seconds (nearest rank)."""
    if not values:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    s = sorted(values)

    def at(q: float) -> float:
        return round(s[min(len(s) - 1, max(0, int(q * len(s) + 0.5) - 1))] * 1000, 3)

    return {"p50_ms": at(0.50), "p95_ms": at(0.95), "p99_ms": at(0.99), "max_ms": at(1.0)}


# --- /proc --------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (its own threads; children are separate PIDs)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kib(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) in KiB from /proc/<pid>/status."""
    rss = hwm = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


def children(pid: int) -> list[int]:
    """Direct and indirect children (gunicorn workers, uvicorn reloaders)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            kids = []
        out.extend(kids)
        todo.extend(kids)
    return out


def server_pids(pid: int) -> list[int]:
    """A ``clarion serve`` and, with ``--workers``, its worker processes (which come up
    shortly after the supervisor's first answer)."""
    for _ in range(100):
        if len(children(pid)) >= 2 or not children(pid):
            break
        time.sleep(0.1)
    return [pid, *children(pid)]


@dataclass
class Usage:
    """CPU seconds and peak RSS of a group of server processes over a measured window."""

    pids: list[int]
    cpu0: float = 0.0
    cpu1: float = 0.0
    peak_rss_kib: int = 0
    rss_kib: int = 0

    def start(self) -> Usage:
        self.cpu0 = sum(cpu_seconds(p) for p in self.pids)
        return self

    def stop(self) -> Usage:
        self.cpu1 = sum(cpu_seconds(p) for p in self.pids)
        mem = [rss_kib(p) for p in self.pids]
        self.rss_kib = sum(m[0] for m in mem)
        self.peak_rss_kib = sum(m[1] for m in mem)
        return self

    @property
    def cpu(self) -> float:
        return round(self.cpu1 - self.cpu0, 3)

    def as_dict(self) -> dict[str, Any]:
        return {
            "server_cpu_seconds": self.cpu,
            "server_rss_kib": self.rss_kib,
            "server_peak_rss_kib": self.peak_rss_kib,
            "server_processes": len(self.pids),
        }


# --- processes ----------------------------------------------------------------------------


@dataclass
class Procs:
    """Every process the bench started, ended by PID (SIGTERM, then SIGKILL)."""

    started: list[subprocess.Popen[Any]] = field(default_factory=list)

    def spawn(self, args: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        proc = subprocess.Popen(list(args), **kw)
        self.started.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[Any], timeout: float = 10) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc in self.started:
            self.started.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.started)):
            self.stop(proc)


def start_starlette_hello(procs: Procs) -> tuple[subprocess.Popen[Any], str]:
    """The bare Starlette baseline (``peers/starlette_hello.py``, one uvicorn process),
    answering: its process and the URL of its one route."""
    port = free_port()
    proc = procs.spawn(
        [PY, str(BENCH / "peers" / "starlette_hello.py"), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/hello"
    try:
        wait_http(url, proc)
    except BaseException:
        procs.stop(proc)
        raise
    return proc, url


def wait_http(url: str, proc: subprocess.Popen[Any], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


# --- PostgreSQL ---------------------------------------------------------------------------


def psql(sql: str, db: str = "test", quiet: bool = True) -> str:
    out = subprocess.run(
        ["psql", f"{PG_BASE}/{db}", "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if out.returncode != 0:
        raise RuntimeError(f"psql failed: {out.stderr.strip()}")
    return out.stdout


def fresh_db(name: str) -> str:
    """Drop and create a scratch database; returns its plain postgresql:// URL."""
    psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    psql(f'CREATE DATABASE "{name}"')
    return f"{PG_BASE}/{name}"


def drop_db(name: str) -> None:
    psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- Clarion ------------------------------------------------------------------------------


def clarion_env(database_url: str, redis: bool = True, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLARION_")}
    env.update(
        CLARION_DATABASE_URL=database_url,
        CLARION_SECRET_KEY=SECRET,
        CLARION_LOG_LEVEL="warning",
        # The default API limit (600000/minute per key) is a policy, not a capacity: a bench
        # of capacity lifts it. The limiter itself still runs on every request.
        CLARION_RATE_LIMIT_API="100000000/minute",
        CLARION_WEBHOOK_ALLOW_PRIVATE="true",
    )
    if redis:
        env["CLARION_REDIS_URL"] = REDIS_URL
        env["CLARION_REDIS_PREFIX"] = f"clarionbench{os.getpid()}"
    env.update(extra)
    return env


def clarion_cli(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [PY, "-m", "clarion.cli", *args],
        env=env,
        cwd=BENCH,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if out.returncode != 0:
        raise RuntimeError(f"clarion {' '.join(args)} failed: {out.stderr[-2000:]}")
    return out.stdout


@dataclass
class Clarion:
    url: str
    key: str
    proc: subprocess.Popen[Any]

    @property
    def ws(self) -> str:
        return self.url.replace("http://", "ws://") + "/api/v1/ws"


def start_clarion(
    procs: Procs, env: dict[str, str], key: str | None = None, log_name: str = "serve"
) -> Clarion:
    """``clarion serve`` on a free port (migrates first), ready when /readyz answers."""
    if key is None:
        key = clarion_cli(env, "api-key", "create", "--name", "bench").strip()
    port = free_port()
    log = open(RESULTS / f"{log_name}-{port}.log.tmp", "wb")  # noqa: SIM115
    proc = procs.spawn(
        [PY, "-m", "clarion.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=BENCH,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/readyz", proc)
    return Clarion(url, key, proc)


# --- load generator processes -------------------------------------------------------------


def loadgen(procs: Procs, spec: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
    """Run ``bench/loadgen.py`` with a JSON spec in its own process; returns its JSON."""
    proc = procs.spawn(
        [PY, str(BENCH / "loadgen.py"), json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        procs.stop(proc)
        raise
    procs.started.remove(proc) if proc in procs.started else None
    if proc.returncode != 0:
        raise RuntimeError(f"loadgen failed: {err[-3000:]}")
    return dict(json.loads(out.strip().splitlines()[-1]))


class WsDriver:
    """A ``bench/wsdriver.py`` process holding WebSocket clients; talks JSON lines."""

    def __init__(self, procs: Procs, spec: dict[str, Any]) -> None:
        self.procs = procs
        self.proc = procs.spawn(
            [PY, str(BENCH / "wsdriver.py"), json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    def read(self, timeout: float = 300) -> dict[str, Any]:
        import select

        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError("ws driver did not answer")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"ws driver exited with {self.proc.wait(5)}")
        return dict(json.loads(line))

    def command(self, cmd: str, timeout: float = 300) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self.read(timeout)

    def close(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(30)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.procs.stop(self.proc)


# --- results ------------------------------------------------------------------------------


def write_result(scenario: str, data: dict[str, Any]) -> dict[str, Any]:
    data = {
        "scenario": scenario,
        "commit": git_commit(),
        "uncommitted_clarion_files": dirty_files(),
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        **data,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{scenario}.json").write_text(json.dumps(data, indent=2) + "\n")
    return data


def ratio(a: float | None, b: float | None, digits: int = 3) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, digits)


# --- PostgreSQL server CPU ------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def postgres_cpu_seconds() -> float | None:
    """CPU seconds of the local PostgreSQL server so far: the postmaster's own and its
    reaped children's (``cutime + cstime``: backends that ended, e.g. a benchmark's
    connections) plus every live child's. A delta over a window is what the server spent
    in it, connections that came and went included. ``None`` when no postmaster is
    visible in ``/proc`` (PostgreSQL on another host or in another container)."""
    comm: dict[int, str] = {}
    ppid: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/comm") as f:
                c = f.read().strip()
            if c.startswith("postgres"):
                comm[int(name)] = c
                ppid[int(name)] = int(_stat_fields(int(name))[1])
        except (OSError, ValueError, IndexError):
            continue
    roots = [p for p in comm if ppid[p] not in comm]
    if not roots:
        return None
    total = 0
    for pid in comm:
        try:
            fields = _stat_fields(pid)
        except OSError:  # ended meanwhile: counted in its parent's cutime next time
            continue
        total += int(fields[11]) + int(fields[12])
        if pid in roots:
            total += int(fields[13]) + int(fields[14])
    return total / CLK_TCK
