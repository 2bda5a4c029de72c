"""Crash safety: 2,000 webhook deliveries while ``clarion worker`` processes are SIGKILLed.

Three worker processes with a 3 s lease drain a PostgreSQL outbox into a local receiver;
one is SIGKILLed (by PID) twice mid-run and replaced. Every delivery must arrive at least
once, duplicates must share their webhook-id, and nothing may stay leased.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import text

from clarion.config import Settings
from clarion.domain.send_command import SendCommand
from clarion.domain.types import ChannelName
from clarion.services.container import Services
from clarion.store.db import Database
from tests.conftest import PG_ADMIN_URL, _pg_admin, service_missing
from tests.e2e.conftest import CLARION, clarion_env, run_cli

TOTAL = 2000
LEASE = 3


class Received:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_id: dict[str, list[int]] = defaultdict(list)  # webhook-id -> notification ids
        self.count = 0


def _receiver(received: Received) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            nid = json.loads(body)["notification"]["id"]
            time.sleep(0.02)  # a receiver that takes a moment: kills land mid-send
            with received.lock:
                received.by_id[self.headers["webhook-id"]].append(nid)
                received.count += 1
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def pg_db() -> Iterator[str]:
    name = f"clarion_crash_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        service_missing("PostgreSQL at 127.0.0.1:5432", exc)
    yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _seed(url: str, hook_url: str) -> None:
    settings = Settings(
        database_url=url,
        secret_key="crash-test-secret-" + "x" * 32,
        embedded_worker=False,
        webhook_allow_private=True,
        _env_file=None,  # type: ignore[call-arg]
    )
    services = Services(settings)
    try:
        await services.webhooks.create(hook_url)
        for part in range(TOTAL // 1000):
            await services.sending.send(
                SendCommand(
                    user_ids=tuple(f"u{part}-{i}" for i in range(1000)),
                    type="crash",
                    title="crash test",
                    channels=(ChannelName.WEBHOOK,),
                )
            )
    finally:
        await services.close()


async def _rows(url: str) -> dict[str, str]:
    db = Database(url)
    try:
        async with db.connect() as conn:
            rows = await conn.execute(text("SELECT id, status FROM deliveries"))
            return {r[0]: r[1] for r in rows}
    finally:
        await db.dispose()


def _wait_catches_sigterm(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Wait until the process has a SIGTERM handler (its SigCgt mask in /proc)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        status = Path(f"/proc/{proc.pid}/status").read_text()
        caught = int(next(x for x in status.splitlines() if x.startswith("SigCgt:")).split()[1], 16)
        if caught & (1 << (signal.SIGTERM - 1)):
            return
        time.sleep(0.05)


def test_sigkilled_workers_lose_nothing(pg_db: str, tmp_path: Path) -> None:
    started = time.monotonic()
    received = Received()
    server = _receiver(received)
    env = clarion_env(
        tmp_path,
        CLARION_DATABASE_URL=pg_db,
        CLARION_SECRET_KEY="crash-test-secret-" + "x" * 32,
        CLARION_WEBHOOK_ALLOW_PRIVATE="true",
        CLARION_WORKER_LEASE_SECONDS=str(LEASE),
        CLARION_WORKER_POLL_SECONDS="0.2",
        CLARION_WORKER_CONCURRENCY="8",
        CLARION_WORKER_BATCH_SIZE="8",
        CLARION_LOG_LEVEL="warning",
    )
    run_cli(env, "migrate", cwd=tmp_path)
    asyncio.run(_seed(pg_db, f"http://127.0.0.1:{server.server_address[1]}/hook"))

    procs: list[subprocess.Popen[bytes]] = []

    def spawn() -> subprocess.Popen[bytes]:
        log = (tmp_path / f"worker-{len(procs)}.log").open("wb")
        proc = subprocess.Popen(
            [*CLARION, "worker"], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT
        )
        procs.append(proc)
        return proc

    try:
        victim = spawn()
        spawn()
        spawn()
        killed: list[subprocess.Popen[bytes]] = []
        for threshold in (TOTAL // 5, TOTAL // 2):
            deadline = time.monotonic() + 40
            while received.count < threshold and time.monotonic() < deadline:
                time.sleep(0.02)
            victim.send_signal(signal.SIGKILL)  # by PID: only the process we started
            victim.wait(10)
            killed.append(victim)
            victim = spawn()
        assert len(killed) == 2
        print(f"\nkills done at {time.monotonic() - started:.1f}s, {received.count} received")

        deadline = time.monotonic() + 60
        rows: dict[str, str] = {}
        while time.monotonic() < deadline:
            rows = asyncio.run(_rows(pg_db))
            if len(rows) == TOTAL and set(rows.values()) == {"delivered"}:
                break
            time.sleep(0.5)

        for proc in procs:
            if proc.poll() is None:
                # A replacement started late may still be importing: SIGTERM before its
                # handler is installed would kill it rather than test the drain.
                _wait_catches_sigterm(proc)
                proc.send_signal(signal.SIGTERM)
        print(f"all delivered at {time.monotonic() - started:.1f}s")
        for proc in procs:
            if proc not in killed:
                assert proc.wait(20) == 0  # SIGTERM drains and exits cleanly
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        server.shutdown()

    assert len(rows) == TOTAL
    assert set(rows.values()) == {"delivered"}, {s for s in rows.values()}  # none leased
    with received.lock:
        by_id = dict(received.by_id)
    assert set(by_id) == set(rows)  # every delivery arrived, keyed by its webhook-id
    for nids in by_id.values():
        assert len(set(nids)) == 1  # a duplicate is the same delivery, same notification
    duplicates = sum(len(v) - 1 for v in by_id.values())
    print(f"\n{TOTAL} deliveries, {duplicates} duplicates after 2 SIGKILLs")
    assert time.monotonic() - started < 90
