"""Fixtures for hub integration tests: the shared Redis and PostgreSQL, and private
``redis-server`` processes that tests may kill and restart.

Every Redis key/channel lives under a per-test prefix and every NOTIFY channel is unique,
so parallel runs do not collide. A missing service skips with the reason (fails under
``CI=true``). Private redis-server processes listen on 127.0.0.1 only and are ended by
PID at teardown.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from redis.asyncio import Redis

from clarion.hub.redis_link import RedisLink

REDIS_URL = os.environ.get("CLARION_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_DSN = os.environ.get("CLARION_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
RUN_ID = uuid.uuid4().hex[:8]


def service_missing(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"required service missing under CI: {why}")
    pytest.skip(why)


def unique_tag() -> str:
    return f"{RUN_ID}_{uuid.uuid4().hex[:8]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisProcess:
    """A private redis-server on a free port; ``kill()`` is SIGKILL by PID."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        # Popen only forks; readiness is awaited below without blocking the loop.
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = Redis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            async with asyncio.timeout(10):
                while True:
                    try:
                        await client.ping()
                        return
                    except Exception:
                        await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture
async def redis_process() -> AsyncIterator[RedisProcess]:
    if shutil.which("redis-server") is None:
        service_missing("redis-server binary not found")
    rp = RedisProcess(free_port())
    await rp.start()
    try:
        yield rp
    finally:
        rp.kill()


@pytest.fixture
async def shared_link() -> AsyncIterator[RedisLink]:
    """A link to the shared Redis under a prefix unique to this test."""
    link = RedisLink(REDIS_URL, prefix=f"clarion-test:{unique_tag()}", ping_interval=0.2)
    await link.start()
    if not link.healthy:
        await link.close()
        service_missing(f"Redis at {REDIS_URL} unreachable: {link.reason}")
    try:
        yield link
    finally:
        # SCAN walks the whole keyspace: on a Redis that a benchmark filled, the default
        # 10 keys per call made this teardown take minutes.
        keys = [k async for k in link.client.scan_iter(match=link.key("*"), count=10_000)]
        if keys:
            await link.client.delete(*keys)
        await link.close()


@pytest.fixture
async def pg_dsn() -> str:
    try:
        conn = await asyncpg.connect(PG_DSN, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        service_missing(f"PostgreSQL at {PG_DSN} unreachable: {exc}")
    await conn.close()
    return PG_DSN


@pytest.fixture
def tag() -> Iterator[str]:
    yield unique_tag()
