"""The claim/lease state machine on both databases, and the real worker loop."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from clarion.domain.jobs import Result
from clarion.domain.retry import Outcome
from clarion.runtime import Runtime
from clarion.services.clock import utcnow
from clarion.services.container import Services

from .conftest import Sink, add_webhook, delivery_settings, send, statuses


async def test_priority_order(authed: httpx.AsyncClient, services: Services) -> None:
    await send(authed, "u1", ["webhook"], priority="low")
    await send(authed, "u1", ["webhook"], priority="normal")
    urgent = await send(authed, "u1", ["webhook"], priority="urgent")
    await send(authed, "u1", ["webhook"], priority="high")
    [first] = await services.deliveries.claim("w1", 1, 30)
    assert first.delivery.notification_id == urgent
    rest = await services.deliveries.claim("w1", 10, 30)
    assert [j.delivery.priority for j in rest] == [2, 1, 0]


async def test_lease_expiry_hands_over_and_stale_worker_cannot_overwrite(
    authed: httpx.AsyncClient, services: Services
) -> None:
    nid = await send(authed, "u1", ["webhook"])
    # A lease long enough that a loaded machine cannot outlast it between the two claims.
    [job] = await services.deliveries.claim("dead-worker", 10, 1.5)
    assert job.delivery.attempts == 1
    assert await services.deliveries.claim("w2", 10, 30) == []  # leased: not due
    await asyncio.sleep(1.6)
    [again] = await services.deliveries.claim("w2", 10, 30)
    assert again.id == job.id and again.delivery.attempts == 2

    # The first worker wakes up late: its result is not written over the new lease.
    late = Result(job, Outcome.DELIVERED, utcnow(), 5, provider="webhook")
    [(_, status)] = await services.deliveries.record("dead-worker", [late])
    assert status == "lost"
    assert (await statuses(services, [nid]))[job.id] == "sending"
    ok = Result(again, Outcome.DELIVERED, utcnow(), 5, provider="webhook")
    [(_, status)] = await services.deliveries.record("w2", [ok])
    assert status == "delivered"


async def test_renew_keeps_the_lease(authed: httpx.AsyncClient, services: Services) -> None:
    await send(authed, "u1", ["webhook"])
    [job] = await services.deliveries.claim("w1", 10, 0.3)
    await asyncio.sleep(0.2)
    assert await services.deliveries.renew("w1", [job.id], 5) == 1
    await asyncio.sleep(0.2)
    assert await services.deliveries.claim("w2", 10, 30) == []
    assert await services.deliveries.renew("w2", [job.id], 5) == 0  # not its lease


async def test_release_on_shutdown_does_not_burn_an_attempt(
    authed: httpx.AsyncClient, services: Services
) -> None:
    await send(authed, "u1", ["webhook"])
    [job] = await services.deliveries.claim("w1", 10, 30)
    assert await services.deliveries.release("w1", [job.id]) == 1
    [again] = await services.deliveries.claim("w2", 10, 30)
    assert again.id == job.id and again.delivery.attempts == 1


async def test_concurrent_workers_never_double_claim(
    db_url: str, authed: httpx.AsyncClient, services: Services
) -> None:
    if db_url.startswith("sqlite"):
        pytest.skip("SKIP LOCKED is PostgreSQL's; SQLite has one writer")
    r = await authed.post(
        "/api/v1/notifications",
        json={
            "user_ids": [f"u{i}" for i in range(300)],
            "type": "t",
            "title": "x",
            "channels": ["webhook", "sms"],
        },
    )
    assert r.status_code == 202
    others = [Services(delivery_settings(db_url)) for _ in range(3)]
    try:
        pools = [services, *others]

        async def drain(svc: Services, name: str) -> list[str]:
            got: list[str] = []
            while True:
                jobs = await svc.deliveries.claim(name, 7, 60)
                if not jobs:
                    return got
                got += [j.id for j in jobs]

        results = await asyncio.gather(*(drain(s, f"w{i}") for i, s in enumerate(pools)))
    finally:
        for svc in others:
            await svc.close()
    claimed = [d for r in results for d in r]
    assert len(claimed) == len(set(claimed)) == 600
    assert sum(1 for r in results if r) >= 2  # the work was actually shared


async def test_embedded_worker_wakes_on_send_and_drains_on_stop(
    authed: httpx.AsyncClient, services: Services, sink: Sink
) -> None:
    await add_webhook(authed, sink.url())
    # A poll of 30 s: only the in-process wake-up can make this fast.
    runtime = Runtime(services.settings, services)
    worker = await runtime.start_worker(poll_seconds=30.0)
    try:
        await asyncio.sleep(0.1)  # let the first (empty) claim happen
        t0 = time.monotonic()
        nid = await send(authed, "u1", ["webhook"])
        await sink.wait_hits(1)
        assert time.monotonic() - t0 < 2

        # SIGTERM-style drain: an in-flight slow send completes and is recorded.
        sink.delay = 0.5
        nid2 = await send(authed, "u1", ["webhook"])
        await sink.wait_hits(2)
        worker.stop()
    finally:
        await runtime.stop_worker()
    got = await statuses(services, [nid, nid2])
    assert set(got.values()) == {"delivered"}
