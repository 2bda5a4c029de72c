"""The delivery pipeline against real peers: a programmable HTTP receiver (webhooks, push
service), aiosmtpd, and both databases. Workers are the real ones, run in-process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web

from clarion.config import Settings
from clarion.delivery.channels.registry import build_registry
from clarion.delivery.worker import Worker
from clarion.services.container import Services
from clarion.store.deliveries import for_notification
from tests.integration.channels.conftest import SmtpServer, smtp_server  # noqa: F401

TERMINAL = {"delivered", "dead", "suppressed", "cancelled"}


@dataclass
class Hit:
    at: float
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Sink:
    """An HTTP peer whose answer to the n-th request (per path) a test programs."""

    port: int = 0
    hits: list[Hit] = field(default_factory=list)
    # (path, n) -> (status, headers); default 200
    script: Callable[[str, int], tuple[int, dict[str, str]]] = lambda _p, _n: (200, {})
    delay: float = 0.0
    _runner: web.AppRunner | None = None
    _hit: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_hits(self, n: int, max_seconds: float = 5.0) -> None:
        async with asyncio.timeout(max_seconds):
            while len(self.hits) < n:
                self._hit.clear()
                await self._hit.wait()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        n = len(self.at(request.path))
        self.hits.append(
            Hit(
                time.monotonic(),
                request.path,
                {k.lower(): v for k, v in request.headers.items()},
                body,
            )
        )
        self._hit.set()
        if self.delay:
            await asyncio.sleep(self.delay)
        status, headers = self.script(request.path, n)
        return web.Response(status=status, headers=headers)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    s = Sink()
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


def delivery_settings(db_url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db_url,
        "secret_key": "test-secret-key-" + "x" * 32,
        "redis_url": None,
        "embedded_worker": False,
        "webhook_allow_private": True,
        "retry_base_delay_seconds": 0.05,
        "retry_max_delay_seconds": 0.2,
        "max_attempts": 4,
        "worker_poll_seconds": 0.05,
        "worker_lease_seconds": 5.0,
        "public_url": "https://clarion.example",
        "_env_file": None,
    }
    values.update(extra)
    return Settings(**values)


@pytest.fixture
def settings(db_url: str) -> Settings:
    return delivery_settings(db_url)


def make_worker(services: Services, **options: Any) -> Worker:
    return Worker(services.deliveries, build_registry(services.settings), **options)


async def settle(services: Services, notification_ids: list[int], max_seconds: float = 20) -> None:
    """Run a real worker until every delivery of these notifications is terminal."""
    worker = make_worker(services, batch_size=50)
    deadline = time.monotonic() + max_seconds
    try:
        while True:
            await worker.run_until_idle(max_seconds=max_seconds)
            rows = await statuses(services, notification_ids)
            if rows and all(s in TERMINAL for s in rows.values()):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"deliveries did not settle: {rows}")
            await asyncio.sleep(0.05)
    finally:
        await worker.registry.aclose()


async def statuses(services: Services, notification_ids: list[int]) -> dict[str, str]:
    out: dict[str, str] = {}
    async with services.db.connect() as conn:
        for nid in notification_ids:
            for row in await for_notification(conn, nid):
                out[row.id] = row.status
    return out


async def send(authed: httpx.AsyncClient, user_id: str, channels: list[str], **extra: Any) -> int:
    body = {"user_id": user_id, "type": "follow", "title": "Ana followed you", "channels": channels}
    body.update(extra)
    r = await authed.post("/api/v1/notifications", json=body)
    assert r.status_code == 202, r.text
    nid: int = r.json()["ids"][0]
    return nid


async def add_webhook(authed: httpx.AsyncClient, url: str, **extra: Any) -> dict[str, Any]:
    r = await authed.post("/api/v1/webhooks", json={"url": url, **extra})
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created
