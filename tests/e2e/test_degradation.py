"""Redis dies under load and comes back: two ``clarion serve`` nodes on PostgreSQL keep
answering (no 5xx), lose nothing they accepted, report ``degraded`` with the reason,
keep pushing across nodes through PostgreSQL NOTIFY, and return to ``ok`` by themselves."""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import websockets

from tests.conftest import service_missing
from tests.e2e.conftest import clarion_env, free_port, run_cli, start_server
from tests.e2e.test_realtime import SECRET, recv, token_for, ws_url
from tests.integration.hub.conftest import RedisProcess


async def status_of(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/api/v1/notifications/system/status")
    assert r.status_code == 200, r.text
    return dict(r.json())


async def wait_status(client: httpx.AsyncClient, wanted: str, within: float) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        status = await status_of(client)
        if status["status"] == wanted:
            return status
        assert time.monotonic() < deadline, f"never {wanted}: {status}"
        await asyncio.sleep(0.2)


async def test_redis_outage_under_load(tmp_path: Path, pg_url: str) -> None:
    if shutil.which("redis-server") is None:
        service_missing("redis-server", "binary not found")
    redis = RedisProcess(free_port())
    await redis.start()
    prefix = f"deg{uuid.uuid4().hex[:6]}"
    env = clarion_env(
        tmp_path,
        CLARION_DATABASE_URL=pg_url,
        CLARION_REDIS_URL=redis.url,
        CLARION_SECRET_KEY=SECRET,
        CLARION_REDIS_PREFIX=prefix,
        CLARION_EMBEDDED_WORKER="false",
    )
    key = run_cli(env, "api-key", "create", "--name", "deg", cwd=tmp_path).strip()
    a = start_server(tmp_path, env, key=key)
    b = start_server(tmp_path, env, key=key)
    user = f"u-{uuid.uuid4().hex[:6]}"
    accepted: list[int] = []
    failures: list[str] = []
    received: set[int] = set()
    stop = asyncio.Event()
    auth = {"Authorization": f"Bearer {key}"}
    try:
        async with (
            httpx.AsyncClient(base_url=a.url, headers=auth, timeout=10) as api,
            websockets.connect(ws_url(b, token_for(user))) as ws,
        ):
            await recv(ws)

            async def load() -> None:
                n = 0
                while not stop.is_set() and n < 2000:
                    n += 1
                    r = await api.post(
                        "/api/v1/notifications",
                        json={"user_id": user, "type": "t", "title": f"n{n}"},
                    )
                    if r.status_code == 202:
                        accepted.extend(r.json()["ids"])
                    else:
                        failures.append(f"{r.status_code} {r.text[:200]}")
                    await asyncio.sleep(0.02)

            async def listen() -> None:
                async for raw in ws:
                    msg = orjson.loads(raw)
                    if msg["type"] == "notification.created":
                        received.add(msg["notification"]["id"])

            listener = asyncio.create_task(listen())
            loader = asyncio.create_task(load())
            await asyncio.sleep(1.5)
            assert (await status_of(api))["status"] == "ok"

            redis.kill()
            degraded = await wait_status(api, "degraded", within=10)
            assert any("redis" in r for r in degraded["reasons"]), degraded
            before = len(received)
            await asyncio.sleep(2.0)  # pushes keep crossing nodes, now over NOTIFY
            assert len(received) > before, "no push crossed nodes while Redis was down"

            await redis.start()  # same port
            await wait_status(api, "ok", within=20)
            mark = len(accepted)
            await asyncio.sleep(2.0)
            stop.set()
            await loader
            await asyncio.sleep(1.0)
            listener.cancel()
            after_restart = set(accepted[mark:])
            assert after_restart and after_restart <= received, "pushes did not resume"

        assert not failures, failures[:5]
        # nothing accepted was lost: every id is in the user's inbox
        async with httpx.AsyncClient(base_url=b.url, headers=auth, timeout=10) as api:
            stored: set[int] = set()
            cursor = None
            while True:
                params: dict[str, Any] = {"user_id": user, "limit": 100}
                if cursor:
                    params["cursor"] = cursor
                page = (await api.get("/api/v1/notifications", params=params)).json()
                stored |= {i["id"] for i in page["items"]}
                cursor = page["next_cursor"]
                if not cursor:
                    break
        assert set(accepted) == stored
        assert len(accepted) > 30  # the load really ran across the outage
    finally:
        stop.set()
        a.stop()
        b.stop()
        redis.kill()
