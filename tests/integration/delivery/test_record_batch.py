"""Results are written in batches (a few statements per batch): every delivery still gets
exactly its own status, attempt and event, and a result whose lease was lost writes none."""

from __future__ import annotations

import asyncio
from datetime import datetime

import httpx
from sqlalchemy import select

from clarion.domain.jobs import Result
from clarion.domain.retry import Outcome
from clarion.services.clock import as_utc, utcnow
from clarion.services.container import Services
from clarion.store.schema import deliveries, delivery_attempts, events

from .conftest import Sink, add_webhook, make_worker, send


async def _rows(services: Services, ids: list[str]) -> dict[str, dict[str, object]]:
    async with services.db.connect() as conn:
        stmt = select(deliveries).where(deliveries.c.id.in_(ids))
        return {r.id: dict(r._mapping) for r in await conn.execute(stmt)}


async def test_one_batch_of_mixed_results_keeps_statuses_and_events_exact(
    authed: httpx.AsyncClient, services: Services
) -> None:
    await add_webhook(authed, "http://127.0.0.1:9/hook")
    nids = [await send(authed, f"u{i}", ["webhook"]) for i in range(6)]
    held = await services.deliveries.claim("w1", 5, 30)
    [brief] = await services.deliveries.claim("w1", 1, 0.2)
    await asyncio.sleep(0.3)
    [taken] = await services.deliveries.claim("w2", 10, 30)  # w1's short lease ran out
    assert taken.id == brief.id
    ok, busy, bad, nobody, gone = held
    now = utcnow()
    results = [
        Result(ok, Outcome.DELIVERED, now, 3, provider="webhook", detail="HTTP 204"),
        Result(
            busy,
            Outcome.TRANSIENT,
            now,
            4,
            provider="webhook",
            detail="HTTP 503",
            retry_after=120.0,
        ),
        Result(bad, Outcome.PERMANENT, now, 5, provider="webhook", detail="HTTP 400"),
        Result(
            nobody, Outcome.NO_CONTACT, now, 0, provider="webhook", suppress_reason="no_contact"
        ),
        Result(
            gone,
            Outcome.PERMANENT,
            now,
            6,
            provider="webhook",
            detail="HTTP 410 gone",
            disable_endpoint=True,
        ),
        Result(brief, Outcome.DELIVERED, now, 7, provider="webhook", detail="HTTP 204"),
    ]
    written = dict(
        (res.job.id, status) for res, status in await services.deliveries.record("w1", results)
    )
    assert written == {
        ok.id: "delivered",
        busy.id: "failed",
        bad.id: "dead",
        nobody.id: "suppressed",
        gone.id: "dead",
        brief.id: "lost",
    }

    rows = await _rows(services, [r.job.id for r in results])
    assert {i: r["status"] for i, r in rows.items()} == {**written, brief.id: "sending"}
    assert rows[brief.id]["leased_by"] == "w2"  # the late result did not touch it
    assert rows[busy.id]["leased_by"] is None and rows[ok.id]["lease_until"] is None
    assert rows[bad.id]["reason"] == "permanent" and rows[nobody.id]["reason"] == "no_contact"
    assert rows[ok.id]["last_error"] is None and rows[bad.id]["last_error"] == "HTTP 400"
    # Retry-After is a floor for the next attempt.
    next_at = rows[busy.id]["next_attempt_at"]
    assert isinstance(next_at, datetime)
    wait = (as_utc(next_at) - now).total_seconds()
    assert wait >= 119

    async with services.db.connect() as conn:
        evs = [
            r._mapping
            for r in await conn.execute(
                select(events).where(
                    events.c.notification_id.in_(nids), events.c.channel == "webhook"
                )
            )
        ]
        attempts = [
            r._mapping
            for r in await conn.execute(
                select(delivery_attempts).where(
                    delivery_attempts.c.delivery_id.in_([r.job.id for r in results])
                )
            )
        ]
    by_delivery = {e["data"]["delivery_id"]: e["type"] for e in evs}
    assert len(evs) == 5  # one per written result, none for the lost one
    assert by_delivery == {
        ok.id: "delivered",
        busy.id: "failed",
        bad.id: "dead",
        nobody.id: "suppressed",
        gone.id: "dead",
    }
    # Every attempt made is logged, the lost one included (it did happen).
    assert sorted(a["delivery_id"] for a in attempts) == sorted(r.job.id for r in results)

    r = await authed.get("/api/v1/webhooks")
    [endpoint] = r.json()["items"]
    assert endpoint["enabled"] is False  # the 410 disabled it


async def test_stop_hands_back_claimed_jobs_that_never_started(
    authed: httpx.AsyncClient, services: Services, sink: Sink
) -> None:
    """The claimers run ahead of the sends; on stop, what was claimed but not started is
    due again at once with its attempt not counted, and what was in flight is recorded."""
    await add_webhook(authed, sink.url())
    sink.delay = 0.5
    nids = [await send(authed, f"u{i}", ["webhook"]) for i in range(5)]
    worker = make_worker(services, concurrency=1, batch_size=10)
    run = asyncio.create_task(worker.run())
    try:
        await sink.wait_hits(1)
        worker.stop()
        await asyncio.wait_for(run, 10)
    finally:
        await worker.registry.aclose()
    async with services.db.connect() as conn:
        stmt = select(deliveries).where(deliveries.c.notification_id.in_(nids))
        rows = [r._mapping for r in await conn.execute(stmt)]
    assert sorted(r["status"] for r in rows) == ["delivered", *["pending"] * 4]
    for r in rows:
        if r["status"] == "pending":
            assert r["attempts"] == 0 and r["leased_by"] is None
    assert len(sink.hits) == 1
