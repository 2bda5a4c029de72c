"""Batches and scheduled sends on both databases: held, folded once, dropped, scheduled,
rescheduled, cancelled; concurrent flushers; a hypothesis property against the store."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from clarion.config import Settings
from clarion.domain.send_command import SendCommand
from clarion.services.container import Services
from clarion.store.schema import batch_items, batches, notifications

from .conftest import post

LATER = timedelta(seconds=3600)


async def _rule(authed: httpx.AsyncClient, type_: str, **rule: Any) -> None:
    r = await authed.put(f"/api/v1/notifications/batching/rules/{type_}", json=rule)
    assert r.status_code == 200, r.text


async def _inbox(authed: httpx.AsyncClient, user: str = "u1") -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (
        await authed.get(f"/api/v1/notifications?user_id={user}&limit=100")
    ).json()["items"]
    return items


async def test_window_batch_folds_into_one_notification_once(
    authed: httpx.AsyncClient, services: Services
) -> None:
    await _rule(authed, "follow", strategy="window", window_seconds=60)
    names = ["Bo", "Cy", "Di", "Ed", "Ana"]
    held = [
        await post(authed, message=f"{n} started following you", data={"actor": n}) for n in names
    ]
    assert all(h["ids"] == [] and h["accepted"] == 1 for h in held)
    [batch_id] = {h["batched"][0] for h in held}
    assert await _inbox(authed) == []
    listed = (await authed.get("/api/v1/notifications/batches?user_id=u1")).json()["items"]
    assert [(b["id"], b["item_count"]) for b in listed] == [(batch_id, 5)]

    assert await services.batches.flush_due() == 0  # the window is still open
    assert await services.batches.flush_due(datetime.now(UTC) + timedelta(seconds=61)) == 1
    assert await services.batches.flush_due(datetime.now(UTC) + LATER) == 0
    [n] = await _inbox(authed)
    assert n["message"] == "Ana and 4 others started following you"
    assert n["data"]["count"] == 5 and n["data"]["batch_id"] == batch_id
    assert [a["name"] for a in n["data"]["actors"]] == ["Ana", "Ed", "Di", "Cy", "Bo"]
    assert len(n["data"]["batch_item_ids"]) == 5
    # The next follow opens a new batch.
    again = await post(authed, data={"actor": "Fa"})
    assert again["batched"] != [batch_id]


async def test_count_rule_flushes_on_the_nth_and_urgent_skips(
    authed: httpx.AsyncClient, services: Services
) -> None:
    await _rule(authed, "like", strategy="count", count=3)
    for actor in ("a", "b"):
        await post(authed, type="like", title="Like", data={"actor": actor})
    assert await services.batches.flush_due() == 0
    [urgent] = (await post(authed, type="like", title="Like", priority="urgent"))["ids"]
    await post(authed, type="like", title="Like", data={"actor": "c"})
    assert await services.batches.flush_due() == 1
    inbox = await _inbox(authed)
    assert [n["id"] for n in inbox][1] == urgent
    assert inbox[0]["message"] == "c and 2 others liked your post"


async def test_user_digest_and_manual_flush_and_drop(
    authed: httpx.AsyncClient, services: Services
) -> None:
    await authed.put("/api/v1/notifications/preferences/u1", json={"digest": {"comment": "daily"}})
    b1 = (await post(authed, type="comment", title="C", data={"actor": "Ana"}))["batched"][0]
    listed = (await authed.get("/api/v1/notifications/batches")).json()["items"]
    assert listed[0]["rule"]["strategy"] == "digest" and listed[0]["flush_at"] is not None
    r = await authed.post(f"/api/v1/notifications/batches/{b1}/flush")
    assert r.status_code == 200 and r.json()["status"] == "flushed"
    assert r.json()["notification_id"] == (await _inbox(authed))[0]["id"]
    assert (await authed.post(f"/api/v1/notifications/batches/{b1}/flush")).status_code == 409

    b2 = (await post(authed, type="comment", title="C", data={"actor": "Bo"}))["batched"][0]
    assert (await authed.delete(f"/api/v1/notifications/batches/{b2}")).status_code == 204
    assert (await authed.delete(f"/api/v1/notifications/batches/{b2}")).status_code == 409
    assert await services.batches.flush_due(datetime.now(UTC) + timedelta(days=2)) == 0
    assert len(await _inbox(authed)) == 1
    missing = "00000000-0000-0000-0000-000000000000"
    assert (await authed.delete(f"/api/v1/notifications/batches/{missing}")).status_code == 404


async def test_low_priority_digest_setting(authed: httpx.AsyncClient, services: Services) -> None:
    services.settings.low_priority_digest = "hourly"
    assert (await post(authed, priority="low"))["batched"]
    assert (await post(authed, priority="normal"))["ids"]


async def test_schedule_reschedule_cancel(authed: httpx.AsyncClient, services: Services) -> None:
    soon = datetime.now(UTC) + timedelta(minutes=5)
    out = await post(authed, scheduled_for=soon.isoformat(), cancellation_key="k1")
    assert out["ids"] == [] and out["accepted"] == 1
    [sid] = out["scheduled"]
    assert await services.scheduling.run_due() == 0
    assert await _inbox(authed) == []

    later = soon + timedelta(minutes=10)
    r = await authed.patch(
        f"/api/v1/notifications/scheduled/{sid}", json={"scheduled_for": later.isoformat()}
    )
    assert r.status_code == 200 and r.json()["scheduled_for"] == later.isoformat()
    assert await services.scheduling.run_due(soon + timedelta(seconds=1)) == 0
    assert await services.scheduling.run_due(later) == 1
    assert await services.scheduling.run_due(later + LATER) == 0
    [n] = await _inbox(authed)
    row = (await authed.get(f"/api/v1/notifications/scheduled/{sid}")).json()
    assert row["status"] == "sent" and row["notification_id"] == n["id"]
    r = await authed.patch(
        f"/api/v1/notifications/scheduled/{sid}", json={"scheduled_for": later.isoformat()}
    )
    assert r.status_code == 409
    assert (await authed.delete(f"/api/v1/notifications/scheduled/{sid}")).status_code == 409

    # cancel one by id, two by key; cancelled ones never go out
    one = (await post(authed, scheduled_for=soon.isoformat()))["scheduled"][0]
    await post(
        authed,
        user_ids=["u2", "u3"],
        user_id=None,
        scheduled_for=soon.isoformat(),
        cancellation_key="k2",
    )
    listed = (await authed.get("/api/v1/notifications/scheduled")).json()["items"]
    assert len(listed) == 3
    assert (await authed.delete(f"/api/v1/notifications/scheduled/{one}")).status_code == 204
    r = await authed.delete("/api/v1/notifications/scheduled?cancellation_key=k2")
    assert r.json() == {"cancelled": 2}
    assert await services.scheduling.run_due(later + LATER) == 0
    assert len(await _inbox(authed)) == 1


@pytest.mark.parametrize(
    "when", ["2030-01-01T10:00:00", "2000-01-01T10:00:00Z", "2999-01-01T10:00:00Z"]
)
async def test_bad_scheduled_for_is_422(authed: httpx.AsyncClient, when: str) -> None:
    r = await authed.post(
        "/api/v1/notifications",
        json={"user_id": "u1", "type": "t", "title": "x", "scheduled_for": when},
    )
    assert r.status_code == 422, r.text


async def test_user_token_lists_own_scheduled_only(
    authed: httpx.AsyncClient, client: httpx.AsyncClient, services: Services
) -> None:
    soon = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    await post(authed, user_ids=["u1", "u2"], user_id=None, scheduled_for=soon)
    token, _ = services.auth.mint_user_token("u1")
    headers = {"Authorization": f"Bearer {token}"}
    r = await client.get("/api/v1/notifications/scheduled", headers=headers)
    assert [i["user_id"] for i in r.json()["items"]] == ["u1"]
    r = await client.get("/api/v1/notifications/scheduled?user_id=u2", headers=headers)
    assert r.status_code == 403


async def _count(services: Services, table: Any, *where: Any) -> int:
    async with services.db.connect() as conn:
        return int(
            (await conn.execute(select(func.count()).select_from(table).where(*where))).scalar_one()
        )


@pytest.mark.postgres
async def test_two_concurrent_flushers_flush_each_batch_once(
    authed: httpx.AsyncClient, services: Services, settings: Settings
) -> None:
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("SKIP LOCKED concurrency is PostgreSQL's")
    await _rule(authed, "follow", strategy="window", window_seconds=1)
    for i in range(40):
        await post(authed, user_id=f"u{i % 20}", data={"actor": f"a{i}"})
    other = Services(settings)  # a second process, as far as the database can tell
    try:
        late = datetime.now(UTC) + timedelta(seconds=5)
        counts = await asyncio.gather(
            *(svc.batches.flush_due(late, limit=3) for svc in (services, other) for _ in range(5))
        )
        while sum(counts) < 20:
            more = await asyncio.gather(
                services.batches.flush_due(late), other.batches.flush_due(late)
            )
            if sum(more) == 0:
                break
            counts.extend(more)
    finally:
        await other.close()
    assert sum(counts) == 20
    assert await _count(services, notifications) == 20
    assert await _count(services, batches, batches.c.status == "flushed") == 20
    # Every item is in exactly one folded notification.
    async with services.db.connect() as conn:
        rows = (await conn.execute(select(notifications.c.data))).scalars().all()
        item_ids = (await conn.execute(select(batch_items.c.id))).scalars().all()
    folded = [i for d in rows for i in d["batch_item_ids"]]
    assert sorted(folded) == sorted(item_ids)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("add"), st.sampled_from(["u1", "u2"]), st.sampled_from(["g", None])),
            st.tuples(st.just("flush"), st.integers(0, 3), st.none()),
        ),
        min_size=1,
        max_size=12,
    )
)
async def test_property_nothing_lost_nothing_twice(services: Services, steps: list[Any]) -> None:
    """Random arrivals and flush points against the real store (a rule of 3 items or 2
    seconds): every held item ends up in exactly one notification."""
    await services.batching.put(
        "like", {"strategy": "window_or_count", "window_seconds": 2, "count": 3}
    )
    async with services.db.begin() as conn:
        for table in (batch_items, batches, notifications):
            await conn.execute(table.delete())
    clock = datetime.now(UTC)
    added = 0
    for kind, a, b in steps:
        if kind == "add":
            cmd = SendCommand(
                user_ids=(a,), type="like", title="L", group_key=b, data={"actor": f"x{added}"}
            )
            await services.sending.send(cmd)
            added += 1
        else:
            clock += timedelta(seconds=a)
            await services.batches.flush_due(clock)
    await services.batches.flush_due(clock + timedelta(hours=1))
    async with services.db.connect() as conn:
        rows = (await conn.execute(select(notifications.c.data))).scalars().all()
        item_ids = (await conn.execute(select(batch_items.c.id))).scalars().all()
        still_open = await _count(services, batches, batches.c.status == "open")
    ids = [i for d in rows for i in d["batch_item_ids"]]
    assert len(ids) == len(set(ids)) == added == len(item_ids)
    assert sorted(ids) == sorted(item_ids)
    assert sum(d["count"] for d in rows) == added
    assert still_open == 0
