"""A private Redis freezes (SIGSTOP: alive, accepting connections, answering nothing)
under a running ``clarion serve``, then thaws. Sends keep being accepted with bounded
latency (Redis commands time out after ``CLARION_REDIS_TIMEOUT_SECONDS`` and everything
falls back as for a dead Redis), the status says ``degraded`` on every poll while it is
frozen (no flapping), and ``ok`` again once it answers."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import statistics
import time
import uuid
from pathlib import Path

import httpx

from tests.conftest import service_missing
from tests.e2e.conftest import clarion_env, free_port, start_server
from tests.e2e.test_degradation import status_of, wait_status
from tests.integration.hub.conftest import RedisProcess

N = "/api/v1/notifications"
TIMEOUT = 0.5  # CLARION_REDIS_TIMEOUT_SECONDS for this server


async def test_frozen_redis_degrades_steadily_and_recovers(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        service_missing("redis-server", "binary not found")
    redis = RedisProcess(free_port())
    await redis.start()
    assert redis.proc is not None
    pid = redis.proc.pid
    env = clarion_env(
        tmp_path,
        CLARION_REDIS_URL=redis.url,
        CLARION_REDIS_PREFIX=f"frz{uuid.uuid4().hex[:6]}",
        CLARION_REDIS_TIMEOUT_SECONDS=str(TIMEOUT),
        CLARION_EMBEDDED_WORKER="false",
    )
    server = start_server(tmp_path, env)
    auth = {"Authorization": f"Bearer {server.key}"}
    frozen = False
    try:
        async with httpx.AsyncClient(base_url=server.url, headers=auth, timeout=60) as c:
            await wait_status(c, "ok", 30)

            os.kill(pid, signal.SIGSTOP)  # --- frozen ------------------------------------
            frozen = True
            latencies = []
            for n in range(40):
                t0 = time.monotonic()
                r = await c.post(N, json={"user_id": "fz", "type": "t", "title": f"f{n}"})
                latencies.append(time.monotonic() - t0)
                assert r.status_code == 202, r.text
            # At most one command timeout per component before Redis counts as down;
            # before, one send could wait 12.6 s. Slack for a loaded machine on top.
            assert max(latencies) < 8 * TIMEOUT + 2, latencies
            assert statistics.median(latencies) < 1.0, latencies

            await wait_status(c, "degraded", 15)
            seen = []
            for _ in range(15):  # every poll for several seconds: degraded, no flapping
                status = await status_of(c)
                seen.append(status["status"])
                await asyncio.sleep(0.3)
            assert set(seen) == {"degraded"}, seen
            broker = status["broker"]
            assert isinstance(broker, dict) and broker["active_transport"] == "local"

            os.kill(pid, signal.SIGCONT)  # --- thawed -------------------------------------
            frozen = False
            back = await wait_status(c, "ok", 30)
            broker = back["broker"]
            assert isinstance(broker, dict) and broker["active_transport"] == "redis"
            r = await c.post(N, json={"user_id": "fz", "type": "t", "title": "after"})
            assert r.status_code == 202, r.text
            count = await c.get(f"{N}/unread-count", params={"user_id": "fz"})
            assert count.json()["unread"] == 41  # every accepted send is there
    finally:
        if frozen:
            os.kill(pid, signal.SIGCONT)
        server.stop()
        redis.kill()
    log = server.log.read_text()
    assert log.count("redis is down") <= 2, log[-3000:]  # once per flip, not per command
