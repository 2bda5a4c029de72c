"""A ``clarion serve`` process is SIGKILLed while sends with Idempotency-Keys are in
flight; a client retries every key against a restarted server. The key is claimed in the
send's own transaction, so every retry is answered at once (202: written now, or the
replay of what committed before the kill), never ``409 idempotency_in_progress`` for a
claim whose owner died, and every key yields exactly one notification."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Server, clarion_env, start_server

N = "/api/v1/notifications"
KEYS = 120
IN_FLIGHT = 24
RUN = uuid.uuid4().hex[:6]  # users and keys of one run apart from any other on the database


def body_of(i: int) -> dict[str, object]:
    return {"user_id": f"crash-{RUN}-{i}", "type": "order", "title": f"order {i}"}


async def load_until_killed(server: Server) -> dict[int, int]:
    """Sends keys 0..KEYS-1, IN_FLIGHT at a time, and SIGKILLs the server once a third
    have been answered: the rest are in flight or not sent. Returns key -> status."""
    answered: dict[int, int] = {}
    queue = list(range(KEYS))
    killed = asyncio.Event()
    auth = {"Authorization": f"Bearer {server.key}"}

    async def client() -> None:
        async with httpx.AsyncClient(base_url=server.url, headers=auth, timeout=30) as c:
            while queue and not killed.is_set():
                i = queue.pop(0)
                try:
                    r = await c.post(N, json=body_of(i), headers={"Idempotency-Key": f"k{RUN}-{i}"})
                except httpx.HTTPError:
                    continue  # the kill cut it off
                answered[i] = r.status_code
                if len(answered) >= KEYS // 3 and not killed.is_set():
                    killed.set()
                    os.kill(server.proc.pid, signal.SIGKILL)

    await asyncio.gather(*(client() for _ in range(IN_FLIGHT)))
    server.proc.wait(10)
    return answered


async def retry_all(server: Server) -> list[tuple[int, int, float, bool]]:
    """Every key again, as a client would after the crash: (key, status, seconds, replayed)."""
    out: list[tuple[int, int, float, bool]] = []
    auth = {"Authorization": f"Bearer {server.key}"}
    async with httpx.AsyncClient(base_url=server.url, headers=auth, timeout=60) as c:

        async def one(i: int) -> None:
            t0 = time.monotonic()
            r = await c.post(N, json=body_of(i), headers={"Idempotency-Key": f"k{RUN}-{i}"})
            replayed = r.headers.get("Idempotent-Replayed") == "true"
            out.append((i, r.status_code, time.monotonic() - t0, replayed))

        sem = asyncio.Semaphore(16)

        async def bounded(i: int) -> None:
            async with sem:
                await one(i)

        await asyncio.gather(*(bounded(i) for i in range(KEYS)))
    return out


async def unread_counts(server: Server) -> list[int]:
    auth = {"Authorization": f"Bearer {server.key}"}
    async with httpx.AsyncClient(base_url=server.url, headers=auth, timeout=60) as c:
        out = []
        for i in range(KEYS):
            r = await c.get(f"{N}/unread-count", params={"user_id": f"crash-{RUN}-{i}"})
            assert r.status_code == 200, r.text
            out.append(r.json()["unread"])
    return out


@pytest.fixture(params=["sqlite", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """A server environment on each backend (sync: pg_url creates its database with
    asyncio.run, which cannot run inside the test's loop)."""
    extra = {"CLARION_EMBEDDED_WORKER": "false"}
    if request.param == "postgres":
        extra["CLARION_DATABASE_URL"] = request.getfixturevalue("pg_url")
    return clarion_env(tmp_path, **extra)


async def test_retry_after_a_crash_is_answered_at_once(tmp_path: Path, env: dict[str, str]) -> None:
    first = start_server(tmp_path, env)
    try:
        answered = await load_until_killed(first)
    finally:
        first.stop()
    assert answered and all(s == 202 for s in answered.values()), answered
    second = start_server(tmp_path, env, key=first.key)
    try:
        results = await retry_all(second)
        statuses = {i: s for i, s, _, _ in results}
        assert set(statuses.values()) == {202}, statuses  # no 409 for a dead owner's claim
        assert await unread_counts(second) == [1] * KEYS  # one notification per key
    finally:
        second.stop()
    # 5 s is the promise; the machine running the suite is shared, so allow slack on top.
    slowest = max(t for _, _, t, _ in results)
    assert slowest < 5 * 3, slowest
    # Keys answered before the kill replay their committed send; the rest were written now.
    for i in answered:
        assert any(k == i and replayed for k, _, _, replayed in results), i
