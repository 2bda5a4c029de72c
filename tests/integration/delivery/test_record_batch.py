"""Results are written in batches (a few statements per batch): every delivery still gets
exactly its own status, attempt and event, and a result whose lease was lost writes none."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import httpx
from sqlalchemy import select

from clarion.delivery.channels.registry import build_registry
from clarion.delivery.dispatch import dispatch
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


async def _events_for(services: Services, nids: list[int]) -> list[dict[str, object]]:
    async with services.db.connect() as conn:
        stmt = select(events).where(
            events.c.notification_id.in_(nids), events.c.channel == "webhook"
        )
        return [dict(r._mapping) for r in await conn.execute(stmt)]


async def test_the_endpoint_chosen_at_claim_is_written_with_the_result(
    authed: httpx.AsyncClient, services: Services
) -> None:
    """A webhook row with one matching endpoint is updated twice, not three times: the
    claim leases it, the result writes its status and its target in one statement for
    the whole page (delivered, retried and dead alike), and a retry goes back to the
    same endpoint without choosing again."""
    hook = await add_webhook(authed, "http://127.0.0.1:9/hook")
    nids = [await send(authed, f"u{i}", ["webhook"]) for i in range(3)]
    jobs = await services.deliveries.claim("w1", 10, 30)
    assert len(jobs) == 3 and all(j.target == hook["id"] for j in jobs)
    rows = await _rows(services, [j.id for j in jobs])
    # Leased, target not written yet: a worker dying now leaves a row the next claim
    # expands again.
    assert all(r["status"] == "sending" and r["target"] is None for r in rows.values())

    ok, busy, bad = jobs
    now = utcnow()
    results = [
        Result(ok, Outcome.DELIVERED, now, 3, provider="webhook", detail="HTTP 204"),
        Result(busy, Outcome.TRANSIENT, now, 4, provider="webhook", detail="HTTP 503"),
        Result(bad, Outcome.PERMANENT, now, 5, provider="webhook", detail="HTTP 400"),
    ]
    written = dict((r.job.id, s) for r, s in await services.deliveries.record("w1", results))
    assert written == {ok.id: "delivered", busy.id: "failed", bad.id: "dead"}
    rows = await _rows(services, [j.id for j in jobs])
    assert {i: (r["status"], r["target"]) for i, r in rows.items()} == {
        ok.id: ("delivered", hook["id"]),
        busy.id: ("failed", hook["id"]),
        bad.id: ("dead", hook["id"]),
    }
    assert all(r["leased_by"] is None and r["lease_until"] is None for r in rows.values())
    assert rows[bad.id]["reason"] == "permanent" and rows[ok.id]["last_error"] is None
    # The retry's own next attempt, after the claim's lease end was overwritten.
    retry_at = rows[busy.id]["next_attempt_at"]
    assert isinstance(retry_at, datetime) and as_utc(retry_at) < as_utc(now) + timedelta(seconds=5)
    by_delivery = {e["data"]["delivery_id"]: e["type"] for e in await _events_for(services, nids)}  # type: ignore[index]
    assert by_delivery == {ok.id: "delivered", busy.id: "failed", bad.id: "dead"}

    await asyncio.sleep(0.3)  # the retry's backoff (retry_base_delay_seconds=0.05)
    [again] = await services.deliveries.claim("w2", 10, 30)
    assert again.id == busy.id and again.delivery.target == hook["id"]
    assert again.endpoint is not None and again.endpoint.id == hook["id"]
    async with services.db.connect() as conn:
        count = len(list(await conn.execute(select(deliveries.c.id))))
    assert count == 3  # nothing expanded twice


async def test_a_worker_dying_between_the_post_and_the_result_loses_nothing(
    authed: httpx.AsyncClient, services: Services, sink: Sink
) -> None:
    """The POST went out, the worker died before recording it: the lease runs out, the
    next worker expands the row again and sends it with the same webhook-id (the
    receiver dedupes on it), and the first worker's late result writes nothing."""
    hook = await add_webhook(authed, sink.url())
    nid = await send(authed, "u1", ["webhook"])
    registry = build_registry(services.settings)
    try:
        [first] = await services.deliveries.claim("w1", 10, 0.2)
        dying = await dispatch(first, registry)  # sent; never recorded by w1
        assert dying.outcome is Outcome.DELIVERED
        await asyncio.sleep(0.3)
        [second] = await services.deliveries.claim("w2", 10, 30)
        assert second.id == first.id and second.target == hook["id"]
        assert second.delivery.attempts == 2
        done = await dispatch(second, registry)
        [(_, status)] = await services.deliveries.record("w2", [done])
        assert status == "delivered"
        [(_, late)] = await services.deliveries.record("w1", [dying])
        assert late == "lost"
    finally:
        await registry.aclose()

    assert [h.headers["webhook-id"] for h in sink.hits] == [first.id, first.id]
    rows = await _rows(services, [first.id])
    assert rows[first.id]["status"] == "delivered" and rows[first.id]["target"] == hook["id"]
    assert rows[first.id]["leased_by"] is None
    evs = await _events_for(services, [nid])
    assert [e["type"] for e in evs] == ["delivered"]


async def test_a_fan_out_expanded_by_a_worker_that_died_is_not_expanded_twice(
    authed: httpx.AsyncClient, services: Services
) -> None:
    """With several endpoints the claim writes the target and the siblings together, so
    a claim after the lease ran out sends the same rows instead of adding more."""
    one = await add_webhook(authed, "http://127.0.0.1:9/one")
    two = await add_webhook(authed, "http://127.0.0.1:9/two")
    nid = await send(authed, "u1", ["webhook"])
    [first] = await services.deliveries.claim("w1", 10, 0.2)
    assert first.target == one["id"]
    await asyncio.sleep(0.3)
    again = await services.deliveries.claim("w2", 10, 30)
    assert sorted((j.id, j.target) for j in again) == sorted(
        [(first.id, one["id"]), (next(j.id for j in again if j.id != first.id), two["id"])]
    )
    async with services.db.connect() as conn:
        stmt = select(deliveries.c.target).where(deliveries.c.notification_id == nid)
        targets = sorted(r[0] for r in await conn.execute(stmt))
    assert targets == sorted([one["id"], two["id"]])
