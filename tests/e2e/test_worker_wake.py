"""A separate ``clarion worker`` is woken through the hub by a send on a ``clarion serve``
node: the webhook arrives long before the worker's next poll would have found it."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import CLARION, clarion_env, run_cli, start_server
from tests.e2e.test_worker_crash import Received, _receiver

POLL = 30.0  # far longer than the test waits: only a wake-up can deliver in time


@pytest.mark.parametrize("with_redis", [True, False], ids=["redis", "postgres-notify"])
def test_worker_woken_across_processes(tmp_path: Path, pg_url: str, with_redis: bool) -> None:
    received = Received()
    sink = _receiver(received)
    extra = {"CLARION_REDIS_URL": "redis://127.0.0.1:6379/0"} if with_redis else {}
    env = clarion_env(
        tmp_path,
        CLARION_DATABASE_URL=pg_url,
        CLARION_EMBEDDED_WORKER="false",
        CLARION_WORKER_POLL_SECONDS=str(POLL),
        CLARION_WEBHOOK_ALLOW_PRIVATE="true",
        CLARION_REDIS_PREFIX=f"wake{int(time.time() * 1000)}",
        CLARION_LOG_LEVEL="info",
        **extra,
    )
    key = run_cli(env, "api-key", "create", "--name", "wake", cwd=tmp_path).strip()
    server = start_server(tmp_path, env, key=key)
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [*CLARION, "worker"], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        h = {"Authorization": f"Bearer {key}"}
        url = f"http://127.0.0.1:{sink.server_address[1]}/hook"
        r = httpx.post(f"{server.url}/api/v1/webhooks", json={"url": url}, headers=h)
        assert r.status_code == 201, r.text
        deadline = time.monotonic() + 30
        while "started" not in (tmp_path / "worker.log").read_text():
            assert time.monotonic() < deadline, "the worker never started"
            time.sleep(0.1)
        time.sleep(1.0)  # its first poll has passed; it now sleeps for POLL
        start = time.monotonic()
        r = httpx.post(
            f"{server.url}/api/v1/notifications",
            headers=h,
            json={"user_id": "ana", "type": "order", "title": "Shipped", "channels": ["webhook"]},
        )
        assert r.status_code == 202, r.text
        while received.count == 0:
            assert time.monotonic() - start < 10, (tmp_path / "worker.log").read_text()[-2000:]
            time.sleep(0.05)
        assert time.monotonic() - start < 10 < POLL
    finally:
        worker.terminate()
        worker.wait(20)
        server.stop()
        sink.shutdown()
