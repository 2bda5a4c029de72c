"""What the abuse suite (tests/faults/test_abuse.py) needs around a real ``clarion serve``:

- ``Arena``: the server, an API key, a victim user with a token, and a steady *normal
  client* (``Probe``) running in a process of its own, so that the attack clients of the
  test process (threads, thousands of sockets) never steal its CPU or its GIL and what it
  measures is the server's latency.
- ``Window``: the span of one attack; on exit it reads the normal client's requests that
  started inside it, writes their latency figures to ``build/faults/abuse-<case>.json``,
  prints them, and asserts that p99 stays under ``P99_BOUND_SECONDS`` and that none failed.
- Raw-socket helpers that stream an attack (a body or a header) chunk by chunk, read the
  answer while still sending, and stop when the server answers or closes, at a byte limit,
  at a deadline, or when a ``RssGuard`` sees the server grow beyond its bound, so a missing
  protection makes the test fail instead of exhausting the machine.

Every socket has a timeout, every wait a deadline, and every process started here is
stopped by its PID.

The normal client is also this module's command line:
``python -m tests.faults.abuse_support probe URL KEY USER TOKEN RATE OUT MAX_SECONDS``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from tests.e2e.conftest import Server, clarion_env, start_server

ROOT = Path(__file__).resolve().parents[2]
REPORT_DIR = ROOT / "build" / "faults"
# The target is 500 ms; the machine running the suite is shared and loaded, so the test
# allows five times that and reports the real figure.
P99_TARGET_SECONDS = 0.5
P99_BOUND_SECONDS = 2.5
PROBE_RATE = 20.0  # normal requests per second: a steady, modest rate
RSS_GROWTH_BOUND_KIB = 100 * 1024


# --- the server's memory -------------------------------------------------------------
def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in KiB."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(rest.split()[0])
    return found


class RssGuard:
    """Watches a process's VmRSS from a thread; ``tripped`` is set once it grew by more
    than ``bound_kib`` over its value at the start. Attack loops stop when it is set."""

    def __init__(self, pid: int, bound_kib: int = RSS_GROWTH_BOUND_KIB) -> None:
        self.pid = pid
        self.bound_kib = bound_kib
        self.before = memory_kib(pid)
        self.peak_rss = self.before["VmRSS"]
        self.tripped = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            try:
                rss = memory_kib(self.pid)["VmRSS"]
            except (FileNotFoundError, ProcessLookupError):
                return
            self.peak_rss = max(self.peak_rss, rss)
            if rss - self.before["VmRSS"] > self.bound_kib:
                self.tripped.set()

    def __enter__(self) -> RssGuard:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def figures(self) -> dict[str, int]:
        after = memory_kib(self.pid)
        return {
            "rss_before_kib": self.before["VmRSS"],
            "rss_after_kib": after["VmRSS"],
            "rss_peak_seen_kib": self.peak_rss,
            "hwm_before_kib": self.before["VmHWM"],
            "hwm_after_kib": after["VmHWM"],
            "rss_growth_kib": self.peak_rss - self.before["VmRSS"],
        }

    def assert_bounded(self) -> None:
        figures = self.figures()
        assert not self.tripped.is_set(), f"server RSS grew beyond the bound: {figures}"
        assert figures["rss_growth_kib"] <= self.bound_kib, figures


# --- the normal client ---------------------------------------------------------------
def _probe_main(argv: list[str]) -> None:
    """Requests at a steady rate, one at a time, cycling send / list / unread-count;
    one JSON line per request is appended to OUT (flushed at once) until SIGTERM."""
    url, key, user, token, rate_s, out_s, max_s = argv
    rate, deadline = float(rate_s), time.monotonic() + float(max_s)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server_auth = {"Authorization": f"Bearer {key}"}
    user_auth = {"Authorization": f"Bearer {token}"}
    send_body = {"user_id": user, "type": "probe", "title": "steady", "channels": ["in_app"]}
    with (
        httpx.Client(base_url=url, timeout=10.0) as client,
        open(out_s, "a", buffering=1, encoding="utf-8") as out,
    ):
        i = 0
        start = time.monotonic()
        while not stop.is_set() and time.monotonic() < deadline:
            slot = start + i / rate
            delay = slot - time.monotonic()
            if delay > 0 and stop.wait(delay):
                break
            op = ("send", "list", "count")[i % 3]
            i += 1
            wall, t0 = time.time(), time.monotonic()
            status: int | None = None
            error = None
            try:
                if op == "send":
                    r = client.post("/api/v1/notifications", json=send_body, headers=server_auth)
                elif op == "list":
                    r = client.get("/api/v1/notifications?limit=20", headers=user_auth)
                else:
                    r = client.get("/api/v1/notifications/unread-count", headers=user_auth)
                status = r.status_code
                if status >= 300:
                    error = f"status {status}: {r.text[:200]}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            latency = time.monotonic() - t0
            line = {"t": wall, "lat": latency, "op": op, "status": status, "err": error}
            out.write(json.dumps(line) + "\n")


class Probe:
    """The normal client in its own process (see ``_probe_main``)."""

    def __init__(self, server: Server, user: str, token: str, out: Path) -> None:
        self.out = out
        out.write_text("")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.faults.abuse_support",
                "probe",
                server.url,
                server.key,
                user,
                token,
                str(PROBE_RATE),
                str(out),
                "3600",
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=out.with_suffix(".err").open("wb"),
        )

    def samples(self) -> list[dict[str, Any]]:
        rows = []
        for line in self.out.read_text().splitlines():
            if line.endswith("}"):
                rows.append(json.loads(line))
        return rows

    def wait_started(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(s["err"] is None for s in self.samples()):
                return
            if self.proc.poll() is not None:
                err = self.out.with_suffix(".err").read_text()[-2000:]
                raise RuntimeError(f"the normal client exited: {err}")
            time.sleep(0.1)
        raise RuntimeError(f"the normal client never succeeded: {self.samples()[-5:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    # Nearest rank: the smallest value with at least q% of the values at or below it.
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


@dataclass
class Window:
    """One attack's span; see the module docstring. ``extra`` lands in the report."""

    arena: Arena
    case: str
    min_samples: int = 6
    extra: dict[str, Any] = field(default_factory=dict)
    start: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)

    def __enter__(self) -> Window:
        self.start = time.time()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        end = time.time()
        # Requests are sequential: once one that started after the end is recorded, all
        # that started inside the window are. At least ``min_samples`` make the figure.
        deadline = time.monotonic() + 30
        window: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            rows = self.arena.probe.samples()
            window = [r for r in rows if self.start <= r["t"] <= end]
            late = [r for r in rows if r["t"] > end]
            if late and len(window) >= self.min_samples:
                break
            if late:
                end = time.time()
            if self.arena.probe.proc.poll() is not None:
                break
            time.sleep(0.1)
        clash = set(self.extra) & {"case", "requests", "errors", "p99_ms", "max_ms"}
        assert not clash, f"extra figures may not replace the normal client's: {clash}"
        latencies = [r["lat"] for r in window]
        errors = [r for r in window if r["err"] is not None]
        self.stats = {
            "case": self.case,
            "requests": len(window),
            "errors": len(errors),
            "first_errors": [e["err"] for e in errors[:5]],
            "p50_ms": round(percentile(latencies, 50) * 1000, 1),
            "p99_ms": round(percentile(latencies, 99) * 1000, 1),
            "max_ms": round(max(latencies, default=0.0) * 1000, 1),
            # Where the slow ones fell: seconds into the attack, which request, how long.
            "slowest": [
                [round(r["t"] - self.start, 2), r["op"], round(r["lat"] * 1000, 1)]
                for r in sorted(window, key=lambda r: -r["lat"])[:5]
            ],
            "target_p99_ms": P99_TARGET_SECONDS * 1000,
            "bound_p99_ms": P99_BOUND_SECONDS * 1000,
            "attack_seconds": round(end - self.start, 2),
            "load_average": os.getloadavg(),
            **self.extra,
        }
        REPORT_DIR.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.case)
        (REPORT_DIR / f"abuse-{name}.json").write_text(json.dumps(self.stats, indent=2) + "\n")
        print(
            f"\nabuse {self.case}: normal client p99 {self.stats['p99_ms']} ms "
            f"(p50 {self.stats['p50_ms']} ms, max {self.stats['max_ms']} ms, "
            f"{len(window)} requests, {len(errors)} failed)"
        )
        if exc_type is None:
            assert window, "the normal client made no request during the attack"
            assert not errors, f"normal requests failed during the attack: {self.stats}"
            assert self.stats["p99_ms"] < P99_BOUND_SECONDS * 1000, self.stats


# --- the server under attack ---------------------------------------------------------
class Arena:
    """A ``clarion serve`` with a victim user and the normal client, restarted by
    ``ensure()`` if an earlier attack brought it down."""

    def __init__(self, workdir: Path, **env: str) -> None:
        self.workdir = workdir
        self.env = clarion_env(workdir, **env)
        self.server: Server | None = None
        self.probe_: Probe | None = None
        self.victim = "victim"
        self.restarts = 0
        self.rss_at_start = 0

    @property
    def probe(self) -> Probe:
        assert self.probe_ is not None
        return self.probe_

    @property
    def srv(self) -> Server:
        assert self.server is not None
        return self.server

    @property
    def port(self) -> int:
        return int(self.srv.url.rsplit(":", 1)[1])

    @property
    def pid(self) -> int:
        return self.srv.proc.pid

    def ensure(self) -> Arena:
        server_up = self.server is not None and self.server.proc.poll() is None
        if server_up and self.probe_ is not None and self.probe_.proc.poll() is None:
            return self
        self.stop()
        key = self.server.key if self.server is not None else None
        if self.server is not None:
            self.restarts += 1
        try:
            self.server = start_server(self.workdir, self.env, key)
        except RuntimeError:
            # start_server allows 30 s; on a machine busy with other suites one start
            # can take longer. One more try before the case errors.
            self.server = start_server(self.workdir, self.env, key)
        self.rss_at_start = memory_kib(self.pid)["VmRSS"]
        token = self.token(self.victim)
        self.probe_ = Probe(self.server, self.victim, token, self.workdir / "probe.jsonl")
        self.probe_.wait_started()
        return self

    def token(self, user: str) -> str:
        r = httpx.post(
            f"{self.srv.url}/api/v1/users/{user}/token",
            headers=self.auth(),
            timeout=30,
        )
        assert r.status_code == 200, r.text
        return str(r.json()["token"])

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.srv.key}"}

    def window(self, case: str, **extra: Any) -> Window:
        return Window(self, case, extra=dict(extra))

    def alive(self) -> bool:
        return self.srv.proc.poll() is None

    def recover(self, rss_slack_kib: int = 3 * RSS_GROWTH_BOUND_KIB) -> None:
        """After a case: a server that stopped answering (an attack that got through
        stalls its event loop) or kept the memory an attack made it take is killed by
        PID, so the next case starts from a fresh one (``ensure``)."""
        if self.server is None or not self.alive():
            return
        healthy = False
        with contextlib.suppress(httpx.HTTPError):
            healthy = httpx.get(f"{self.srv.url}/readyz", timeout=5).status_code == 200
        if healthy and memory_kib(self.pid)["VmRSS"] - self.rss_at_start <= rss_slack_kib:
            return
        self.srv.proc.kill()
        self.srv.proc.wait(10)

    def stop(self) -> None:
        if self.probe_ is not None:
            self.probe_.stop()
            self.probe_ = None
        if self.server is not None:
            self.server.stop()


# --- raw sockets ---------------------------------------------------------------------
@dataclass
class Outcome:
    """How a streamed attack ended."""

    status: int | None = None  # the status line of the server's answer, if any
    head: bytes = b""  # what the server sent (first bytes)
    closed: bool = False  # the server closed (or reset) the connection
    sent: int = 0  # bytes sent
    stopped: str = ""  # why the client stopped: answered, closed, limit, deadline, guard
    seconds: float = 0.0


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def _status(data: bytes) -> int | None:
    match = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return int(match.group(1)) if match else None


def _response_complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    if match:
        return len(body) >= int(match.group(1))
    return b"transfer-encoding: chunked" not in head.lower() or body.endswith(b"0\r\n\r\n")


def stream(
    port: int,
    head: bytes,
    chunks: Iterator[bytes],
    *,
    limit: int,
    seconds: float,
    guard: RssGuard | None = None,
    abort: threading.Event | None = None,
) -> Outcome:
    """Send ``head`` then ``chunks`` (up to ``limit`` bytes) while reading whatever the
    server answers; stop at its answer, its close, the limit, the deadline, the guard."""
    outcome = Outcome()
    t0 = time.monotonic()
    deadline = t0 + seconds
    received = b""
    pending = head
    exhausted = False
    try:
        sock = connect(port)
    except OSError:
        outcome.closed, outcome.stopped = True, "refused"
        return outcome
    sock.setblocking(False)
    try:
        while True:
            now = time.monotonic()
            if now >= deadline:
                outcome.stopped = "deadline"
                break
            if (guard is not None and guard.tripped.is_set()) or (abort and abort.is_set()):
                outcome.stopped = "guard"
                break
            if not pending and not exhausted and outcome.sent < limit:
                pending = next(chunks, b"")
                exhausted = not pending
            want_write = bool(pending) and outcome.sent < limit
            readable, writable, _ = select.select(
                [sock], [sock] if want_write else [], [], min(0.2, deadline - now)
            )
            if readable:
                try:
                    data = sock.recv(65536)
                except (ConnectionResetError, BrokenPipeError):
                    outcome.closed, outcome.stopped = True, "closed"
                    break
                if not data:
                    outcome.closed, outcome.stopped = True, "closed"
                    break
                received += data
                if _response_complete(received):
                    outcome.stopped = "answered"
                    break
            if writable:
                try:
                    n = sock.send(pending[:262144])
                except BlockingIOError:
                    n = 0
                except (ConnectionResetError, BrokenPipeError):
                    outcome.closed, outcome.stopped = True, "closed"
                    break
                outcome.sent += n
                pending = pending[n:]
            elif not readable and (exhausted or outcome.sent >= limit) and not pending:
                # Everything was sent: keep waiting for the answer until the deadline.
                continue
        if outcome.stopped == "answered":
            # Does the server also close? (It should after refusing.) Wait briefly.
            sock.settimeout(2.0)
            try:
                outcome.closed = sock.recv(1) == b""
            except (TimeoutError, BlockingIOError):
                outcome.closed = False
            except OSError:
                outcome.closed = True
    finally:
        sock.close()
    outcome.status = _status(received)
    outcome.head = received[:2000]
    outcome.seconds = time.monotonic() - t0
    return outcome


def filler(size: int, byte: bytes = b"a") -> Iterator[bytes]:
    """``size`` bytes in 64 KiB chunks, never all in memory."""
    chunk = byte * 65536
    left = size
    while left > 0:
        yield chunk[: min(left, len(chunk))]
        left -= len(chunk)


def chunked(size: int) -> Iterator[bytes]:
    """``size`` bytes of HTTP/1.1 chunked transfer coding, 64 KiB a chunk, and the end."""
    for part in filler(size, b" "):
        yield f"{len(part):x}\r\n".encode() + part + b"\r\n"
    yield b"0\r\n\r\n"


def raw_request(port: int, request: bytes, timeout: float = 15.0) -> tuple[int | None, bytes]:
    """One request's bytes exactly as given (invalid bytes included); its status and body."""
    outcome = stream(port, request, iter(()), limit=len(request), seconds=timeout)
    _, _, body = outcome.head.partition(b"\r\n\r\n")
    return outcome.status, body


def error_code(body: bytes) -> str | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if isinstance(document, dict) and isinstance(document.get("error"), dict):
        code = document["error"].get("code")
        return code if isinstance(code, str) else None
    return None


if __name__ == "__main__":
    if sys.argv[1:2] == ["probe"]:
        _probe_main(sys.argv[2:])
    else:
        sys.exit("usage: python -m tests.faults.abuse_support probe URL KEY USER TOKEN RATE OUT S")
