"""The database goes away under a running ``clarion serve`` and comes back: sends get
``503 storage_unavailable`` with ``Retry-After`` (nothing half-written, nothing accepted
lost), ``system/status`` keeps answering 200 with the database ``down``, ``/readyz`` turns
not ready and ready again, and the log holds one line for the outage and one for the
recovery, not a traceback per request; the failures are counted in
``clarion_dependency_errors_total``.

The PostgreSQL here is a private instance on its own port and data directory, started
and stopped by this test (never the shared one)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from glob import glob
from pathlib import Path

import httpx
import pytest

from tests.conftest import service_missing
from tests.e2e.conftest import clarion_env, free_port, start_server

N = "/api/v1/notifications"
STATUS = "/api/v1/notifications/system/status"
INITDB = ("-U", "postgres", "--no-sync")


class PrivatePostgres:
    """``initdb`` + ``postgres`` on a free port, as the ``postgres`` system user when run
    as root (initdb refuses root). Stopped by its postmaster PID."""

    def __init__(self) -> None:
        bins = sorted(glob("/usr/lib/postgresql/*/bin/initdb"))
        if not bins:
            service_missing("PostgreSQL binaries", "no /usr/lib/postgresql/*/bin/initdb")
        self.bin = Path(bins[-1]).parent
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="clarion-pg-"))
        self.data = self.root / "data"
        self.proc: subprocess.Popen[bytes] | None = None
        self._as: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            self.root.chmod(0o755)
            self._as = ["runuser", "-u", "postgres", "--"]
        subprocess.run(
            [*self._as, str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", *INITDB],
            check=True,
            capture_output=True,
            timeout=120,
        )

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _options(self) -> list[str]:
        return [
            *("-p", str(self.port), "-c", "listen_addresses=127.0.0.1"),
            *("-c", f"unix_socket_directories={self.root}", "-c", "fsync=off"),
        ]

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [*self._as, str(self.bin / "postgres"), "-D", str(self.data), *self._options()],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError("private PostgreSQL did not start")

    def stop(self) -> None:
        """Fast shutdown of the postmaster (SIGINT), by the PID it wrote."""
        pid_file = self.data / "postmaster.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().split()[0])
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
        if self.proc is not None:
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres()
    try:
        pg.start()
        yield pg
    finally:
        pg.remove()


async def wait_for(check: object, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"never {what}"
        await asyncio.sleep(0.2)


async def test_database_outage_is_503_logged_once_and_recovers(
    tmp_path: Path, private_pg: PrivatePostgres
) -> None:
    env = clarion_env(
        tmp_path,
        CLARION_DATABASE_URL=private_pg.url,
        CLARION_REDIS_URL="",  # the embedded worker and pipeline loops run: they retry quietly
    )
    server = start_server(tmp_path, env)
    auth = {"Authorization": f"Bearer {server.key}"}
    user = f"o-{uuid.uuid4().hex[:6]}"
    try:
        async with httpx.AsyncClient(base_url=server.url, headers=auth, timeout=30) as c:
            first = await c.post(N, json={"user_id": user, "type": "t", "title": "before"})
            assert first.status_code == 202, first.text
            ok = await c.get(STATUS)
            assert ok.status_code == 200 and ok.json()["database"]["status"] == "ok"

            private_pg.stop()  # --- outage ---------------------------------------------
            failed = 0
            for n in range(30):
                r = await c.post(N, json={"user_id": user, "type": "t", "title": f"d{n}"})
                assert r.status_code == 503, r.text
                assert r.json()["error"]["code"] == "storage_unavailable"
                assert int(r.headers["Retry-After"]) >= 1
                failed += 1
            await asyncio.sleep(6)  # past api_key_cache_seconds: the key is still trusted
            status = await c.get(STATUS)
            assert status.status_code == 200, status.text
            body = status.json()
            assert body["status"] == "down" and body["database"]["status"] == "down"
            ready = await c.get("/readyz")
            assert ready.status_code == 503 and int(ready.headers["Retry-After"]) >= 1

            private_pg.start()  # --- recovery --------------------------------------------

            async def is_ready() -> bool:
                return (await c.get("/readyz")).status_code == 200

            await wait_for(is_ready, 60, "ready again")
            after = await c.post(N, json={"user_id": user, "type": "t", "title": "after"})
            assert after.status_code == 202, after.text
            assert (await c.get(STATUS)).json()["database"]["status"] == "ok"
            count = await c.get(f"{N}/unread-count", params={"user_id": user})
            assert count.json()["unread"] == 2  # both accepted sends; none of the refused

            metrics = (await c.get("/metrics")).text
            line = next(
                x
                for x in metrics.splitlines()
                if x.startswith('clarion_dependency_errors_total{dependency="database"}')
            )
            assert float(line.split()[-1]) >= failed
    finally:
        server.stop()
    log = server.log.read_text()
    assert log.count("database unavailable:") == 1, log[-3000:]
    assert log.count("database available again") == 1, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    assert "the database is unavailable" not in log, log[-3000:]  # no per-retry warnings
