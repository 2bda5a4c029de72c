"""Deliveries over a user's channel rate limit folded into one channel digest
(``rate_limit_overflow = "digest"``), and ``GET /notifications/batches/{id}``; both
databases, real services, no mocks."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from clarion.config import Settings
from clarion.delivery.dispatch import render
from clarion.services.container import Services
from clarion.store.schema import channel_digests, deliveries, events

from .conftest import post

MISSING = "00000000-0000-0000-0000-000000000000"


def _digest_mode(services: Services, limit: str = "2/hour") -> None:
    services.settings.rate_limit_channels = {"push": limit}
    services.settings.rate_limit_overflow = "digest"


async def _push_rows(services: Services, user: str = "u1") -> list[dict[str, Any]]:
    async with services.db.connect() as conn:
        rows = await conn.execute(
            select(deliveries)
            .where(deliveries.c.user_id == user, deliveries.c.channel == "push")
            .order_by(deliveries.c.notification_id)
        )
        return [dict(r._mapping) for r in rows]


async def _make_due(services: Services) -> None:
    """The limiter's window has reopened: every open digest is due now."""
    past = datetime.now(UTC) - timedelta(seconds=1)
    async with services.db.begin() as conn:
        await conn.execute(update(channel_digests).values(due_at=past))


async def _send_follows(authed: httpx.AsyncClient, names: list[str], user: str = "u1") -> list[int]:
    ids = []
    for n in names:
        body = await post(
            authed,
            user_id=user,
            channels=["in_app", "push"],
            message=f"{n} started following you",
            data={"actor": n},
        )
        ids.append(body["ids"][0])
    return ids


async def test_overflow_is_held_then_released_as_one_folded_delivery(
    authed: httpx.AsyncClient, services: Services
) -> None:
    _digest_mode(services)
    ids = await _send_follows(authed, ["Bo", "Cy", "Di", "Ed", "Ana"])
    # Every notification reached the inbox; only push is limited.
    inbox = (await authed.get("/api/v1/notifications?user_id=u1")).json()["items"]
    assert len(inbox) == 5
    rows = await _push_rows(services)
    assert [r["status"] for r in rows] == ["pending"] * 2 + ["scheduled"] * 3
    held = rows[2:]
    assert {r["reason"] for r in held} == {"rate_limited"}
    [digest_id] = {r["digest_id"] for r in held}
    assert digest_id is not None
    # Due when the limiter's window lets the next one through (its reset_after), all
    # at the time of the digest they joined.
    assert len({r["next_attempt_at"] for r in held}) == 1
    wait = held[0]["next_attempt_at"].replace(tzinfo=UTC) - datetime.now(UTC)
    assert timedelta(0) < wait <= timedelta(hours=1, seconds=5)
    api = (await authed.get(f"/api/v1/notifications/{ids[2]}/deliveries")).json()
    assert api["deliveries"][0]["status"] == "scheduled"
    assert api["deliveries"][0]["reason"] == "rate_limited"

    # Held rows are never claimed on their own, not even once their time has come.
    jobs = await services.deliveries.claim("w", 10, 30)
    assert sorted(j.delivery.notification_id for j in jobs) == ids[:2]
    assert await services.channel_digests.flush_channel_digests() == 0  # window still closed
    await _make_due(services)
    async with services.db.begin() as conn:
        await conn.execute(
            update(deliveries)
            .where(deliveries.c.digest_id == digest_id)
            .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert await services.deliveries.claim("w", 10, 30) == []

    assert await services.channel_digests.flush_channel_digests() == 1
    assert await services.channel_digests.flush_channel_digests() == 0  # never twice
    rows = await _push_rows(services)
    leader = rows[4]
    assert leader["status"] == "pending" and leader["reason"] is None
    assert leader["content"]["count"] == 3
    assert leader["content"]["message"] == "Ana and 2 others started following you"
    assert leader["content"]["notification_ids"] == [ids[4], ids[3], ids[2]]
    assert [(r["status"], r["reason"]) for r in rows[2:4]] == [("suppressed", "batched")] * 2
    async with services.db.connect() as conn:
        evs = [
            dict(r._mapping)
            for r in await conn.execute(select(events).where(events.c.type == "suppressed"))
        ]
        digest = (
            await conn.execute(select(channel_digests).where(channel_digests.c.id == digest_id))
        ).one()
    batched = [e for e in evs if e["reason"] == "batched"]
    assert sorted(e["notification_id"] for e in batched) == ids[2:4]
    assert {e["data"]["digest_delivery_id"] for e in batched} == {leader["id"]}
    assert digest.status == "flushed" and digest.delivery_id == leader["id"]
    assert digest.item_count == 3

    # The worker claims the one digest delivery and renders the fold, not the item.
    [job] = await services.deliveries.claim("w", 10, 30)
    assert job.id == leader["id"]
    message = render(job)
    assert message.push_body == "Ana and 2 others started following you"
    assert message.push_title == "Ana followed you"
    assert message.payload["digest"]["count"] == 3

    # The next overflow opens a new digest.
    await _send_follows(authed, ["Fa"])
    rows = await _push_rows(services)
    assert rows[-1]["status"] == "scheduled" and rows[-1]["digest_id"] not in (None, digest_id)


async def test_items_without_actor_fold_into_a_neutral_list(
    authed: httpx.AsyncClient, services: Services
) -> None:
    _digest_mode(services, "1/hour")
    for i, type_ in enumerate(["build", "build", "deploy", "build"]):
        await post(authed, type=type_, title=f"Event {i}", channels=["push"])
    await _make_due(services)
    assert await services.channel_digests.flush_channel_digests() == 1
    rows = await _push_rows(services)
    assert [r["status"] for r in rows] == ["pending", "suppressed", "suppressed", "pending"]
    content = rows[-1]["content"]
    assert content["title"] == "You have 3 new notifications"
    assert content["message"] == "Event 3; Event 2; Event 1"


async def test_a_single_held_delivery_goes_out_unchanged(
    authed: httpx.AsyncClient, services: Services
) -> None:
    _digest_mode(services, "1/hour")
    await _send_follows(authed, ["Bo", "Cy"])
    await _make_due(services)
    assert await services.channel_digests.flush_channel_digests() == 1
    rows = await _push_rows(services)
    assert [r["status"] for r in rows] == ["pending", "pending"]
    assert rows[1]["content"] is None


async def test_short_window_releases_through_the_pipeline_loop(
    authed: httpx.AsyncClient, services: Services
) -> None:
    """A real 2-second window: the digest is released once the limiter lets one through."""
    from clarion.delivery.pipeline_loop import PipelineLoop

    _digest_mode(services, "2/2 seconds")
    # The limiter's windows are clock-aligned: start just after a boundary so the four
    # sends fall in one window (a busy machine once let the third through the next one).
    await asyncio.sleep(2 - time.time() % 2 + 0.05)
    await _send_follows(authed, ["Bo", "Cy", "Di", "Ed"])
    rows = await _push_rows(services)
    assert [r["status"] for r in rows] == ["pending", "pending", "scheduled", "scheduled"]
    loop = PipelineLoop(services.batches, services.channel_digests, services.scheduling)
    assert await loop.run_once() == 0
    due = rows[2]["next_attempt_at"].replace(tzinfo=UTC)
    await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 0.2)
    assert await loop.run_once() == 1
    rows = await _push_rows(services)
    assert rows[3]["status"] == "pending" and rows[3]["content"]["count"] == 2
    assert rows[3]["content"]["message"] == "Ed and Di started following you"
    assert rows[2]["status"] == "suppressed" and rows[2]["reason"] == "batched"


async def test_default_suppress_is_unchanged(authed: httpx.AsyncClient, services: Services) -> None:
    services.settings.rate_limit_channels = {"push": "2/hour"}
    assert services.settings.rate_limit_overflow == "suppress"
    await _send_follows(authed, ["Bo", "Cy", "Di"])
    rows = await _push_rows(services)
    assert [(r["status"], r["reason"]) for r in rows][2] == ("suppressed", "rate_limited")
    assert rows[2]["digest_id"] is None
    async with services.db.connect() as conn:
        assert (await conn.execute(select(channel_digests))).first() is None


@pytest.mark.postgres
async def test_two_concurrent_releasers_fold_each_digest_once(
    authed: httpx.AsyncClient, services: Services, settings: Settings
) -> None:
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("SKIP LOCKED concurrency is PostgreSQL's")
    _digest_mode(services, "1/hour")
    users = [f"u{i}" for i in range(8)]
    for u in users:
        await _send_follows(authed, ["Ana", "Bo", "Cy", "Di"], user=u)
    await _make_due(services)
    other = Services(settings)  # a second process, as far as the database can tell
    try:
        counts = await asyncio.gather(
            *(
                svc.channel_digests.flush_channel_digests(limit=2)
                for svc in (services, other)
                for _ in range(4)
            )
        )
        while True:
            more = await asyncio.gather(
                services.channel_digests.flush_channel_digests(),
                other.channel_digests.flush_channel_digests(),
            )
            if sum(more) == 0:
                break
            counts.extend(more)
    finally:
        await other.close()
    assert sum(counts) == len(users)
    for u in users:
        rows = await _push_rows(services, u)
        assert [r["status"] for r in rows] == ["pending", "suppressed", "suppressed", "pending"]
        assert rows[-1]["content"]["count"] == 3
        assert [r["reason"] for r in rows[1:3]] == ["batched", "batched"]


async def _user_client(client: httpx.AsyncClient, services: Services, user: str) -> Any:
    token, _ttl = services.auth.mint_user_token(user)
    return httpx.AsyncClient(
        transport=client._transport,
        base_url=client.base_url,
        headers={"Authorization": f"Bearer {token}"},
    )


async def test_batch_route_lists_items_and_the_folded_notification(
    authed: httpx.AsyncClient, client: httpx.AsyncClient, services: Services
) -> None:
    r = await authed.put(
        "/api/v1/notifications/batching/rules/follow",
        json={"strategy": "window", "window_seconds": 60},
    )
    assert r.status_code == 200, r.text
    held = [await post(authed, data={"actor": n}) for n in ("Bo", "Cy", "Ana")]
    [batch_id] = {h["batched"][0] for h in held}
    r = await authed.get(f"/api/v1/notifications/batches/{batch_id}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "open" and body["notification_id"] is None
    assert [i["actor"]["name"] for i in body["items"]] == ["Bo", "Cy", "Ana"]
    assert all(i["title"] == "Ana followed you" and i["folded_into"] is None for i in body["items"])

    async with await _user_client(client, services, "u1") as own:
        assert (await own.get(f"/api/v1/notifications/batches/{batch_id}")).status_code == 200
    async with await _user_client(client, services, "u2") as stranger:
        r = await stranger.get(f"/api/v1/notifications/batches/{batch_id}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert (await authed.get(f"/api/v1/notifications/batches/{MISSING}")).status_code == 404

    assert (await authed.post(f"/api/v1/notifications/batches/{batch_id}/flush")).status_code == 200
    body = (await authed.get(f"/api/v1/notifications/batches/{batch_id}")).json()
    nid = body["notification_id"]
    assert body["status"] == "flushed" and isinstance(nid, int)
    assert {i["folded_into"] for i in body["items"]} == {nid}
    folded = (await authed.get(f"/api/v1/notifications/{nid}")).json()
    assert folded["data"]["batch_id"] == batch_id
    assert sorted(folded["data"]["batch_item_ids"]) == [i["id"] for i in body["items"]]
