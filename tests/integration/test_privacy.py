"""A user's data, exported and erased, through the API on both backends: everything held
about the user is in the export, nothing of it is left after an erasure (each table is
queried directly), events stay counted under a pseudonym, other users are untouched."""

from __future__ import annotations

import base64
import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy import func, select, update

from clarion.services.container import Services
from clarion.store import events as event_store
from clarion.store import inbox as inbox_store
from clarion.store import users as user_store
from clarion.store.attempts import add_attempts
from clarion.store.privacy import USER_TABLES
from clarion.store.schema import (
    batch_items,
    batches,
    channel_digests,
    deliveries,
    delivery_attempts,
    events,
    notifications,
)

N = "/api/v1/notifications"
U = "/api/v1/users"
ANA, BOB = "ana-4711", "bob-0815"


def _b64(n: int) -> str:
    return base64.urlsafe_b64encode(bytes(range(n))).decode().rstrip("=")


async def _populate(client: httpx.AsyncClient, services: Services, user: str) -> dict[str, Any]:
    """Every kind of row Clarion keeps about ``user``; returns ids to look for."""
    ok = {200, 201, 202, 204}
    r = await client.put(f"{U}/{user}", json={"email": f"{user}@example.com", "name": user})
    assert r.status_code in ok, r.text
    r = await client.put(f"{N}/preferences/{user}", json={"timezone": "Europe/Lisbon"})
    assert r.status_code in ok, r.text
    sub = {
        "endpoint": f"https://push.example.com/{user}",
        "keys": {"p256dh": _b64(65), "auth": _b64(16)},
    }
    r = await client.post(f"{U}/{user}/push-subscriptions", json=sub)
    assert r.status_code in ok, r.text
    r = await client.post(
        "/api/v1/webhooks", json={"url": "https://93.184.215.14/only-" + user, "user_id": user}
    )
    assert r.status_code in ok, r.text
    endpoint_id = r.json()["id"]
    sent = await client.post(
        N,
        json={
            "user_id": user,
            "type": "follow",
            "title": f"Someone followed {user}",
            "channels": ["in_app", "webhook"],
        },
    )
    assert sent.status_code == 202, sent.text
    (nid,) = sent.json()["ids"]
    r = await client.post(N, json={"user_id": user, "type": "mention", "title": "Hi"})
    (other_nid,) = r.json()["ids"]
    assert (await client.post(f"{N}/{other_nid}/read")).status_code == 200
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    r = await client.post(
        N, json={"user_id": user, "type": "remind", "title": "Later", "scheduled_for": later}
    )
    assert r.status_code == 202 and r.json()["scheduled"], r.text
    r = await client.put(f"{N}/batching/rules/like", json={"strategy": "count", "count": 10})
    assert r.status_code in ok, r.text
    r = await client.post(N, json={"user_id": user, "type": "like", "title": "A like"})
    assert r.status_code == 202 and r.json()["batched"], r.text
    # A dead webhook delivery with its attempts (as a worker leaves one).
    r = await client.get(f"{N}/{nid}/deliveries")
    (hook,) = r.json()["deliveries"]
    now = datetime.now(UTC)
    async with services.db.begin() as conn:
        await conn.execute(
            update(deliveries)
            .where(deliveries.c.id == hook["id"])
            .values(status="dead", attempts=2, target=endpoint_id, last_error="HTTP 500")
        )
        await add_attempts(
            conn,
            [
                {
                    "delivery_id": hook["id"],
                    "attempt": i,
                    "started_at": now,
                    "outcome": "transient",
                    "latency_ms": 12,
                    "provider": "webhook",
                    "error": "HTTP 500",
                    "worker": "w1",
                }
                for i in (1, 2)
            ],
        )
        await conn.execute(
            channel_digests.insert().values(
                id=f"digest-{user}",
                user_id=user,
                channel="email",
                status="open",
                opened_at=now,
                due_at=now + timedelta(hours=1),
                item_count=1,
            )
        )
    unsubscribe = services.deliveries.unsubscribe_url(user, "follow", "email").rsplit("/", 1)[1]
    assert (await client.post(f"/api/v1/unsubscribe/{unsubscribe}")).status_code == 200
    return {"notification": nid, "delivery": hook["id"], "endpoint": endpoint_id}


async def _export(client: httpx.AsyncClient, user: str) -> Any:
    r = await client.get(f"{U}/{user}/export")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    return r.json()


async def _held(services: Services, user: str) -> dict[str, int]:
    async with services.db.connect() as conn:
        return {
            t.name: int(
                (
                    await conn.execute(
                        select(func.count()).select_from(t).where(t.c.user_id == user)
                    )
                ).scalar_one()
            )
            for t in USER_TABLES
        }


async def _event_counts(services: Services) -> Counter[tuple[str, str | None]]:
    async with services.db.connect() as conn:
        rows = await conn.execute(
            select(events.c.type, events.c.channel, func.count()).group_by(
                events.c.type, events.c.channel
            )
        )
        return Counter({(r[0], r[1]): int(r[2]) for r in rows})


async def test_export_holds_everything_and_erase_leaves_nothing(
    authed: httpx.AsyncClient, services: Services
) -> None:
    ids = await _populate(authed, services, ANA)
    await _populate(authed, services, BOB)

    doc = await _export(authed, ANA)
    assert doc["user_id"] == ANA
    assert doc["profile"]["email"] == f"{ANA}@example.com"
    assert doc["preferences"]["timezone"] == "Europe/Lisbon"
    assert [s["endpoint"] for s in doc["push_subscriptions"]] == [f"https://push.example.com/{ANA}"]
    assert [w["id"] for w in doc["webhook_endpoints"]] == [ids["endpoint"]]
    assert "secret" not in doc["webhook_endpoints"][0]
    assert [(o["type"], o["channel"]) for o in doc["channel_opt_outs"]] == [("follow", "email")]
    assert [s["status"] for s in doc["scheduled_sends"]] == ["scheduled"]
    assert doc["scheduled_sends"][0]["command"]["title"] == "Later"
    (batch,) = doc["batches"]
    assert batch["status"] == "open" and [i["title"] for i in batch["items"]] == ["A like"]
    assert [d["id"] for d in doc["channel_digests"]] == [f"digest-{ANA}"]
    notes = {n["id"]: n for n in doc["notifications"]}
    assert len(notes) == 2 and {n["user_id"] for n in notes.values()} == {ANA}
    assert sorted(n["status"] for n in notes.values()) == ["read", "unread"]
    (hook,) = notes[ids["notification"]]["deliveries"]
    assert hook["id"] == ids["delivery"] and hook["status"] == "dead"
    assert [a["attempt"] for a in hook["attempts"]] == [1, 2]
    assert doc["events"] and {e["user_id"] for e in doc["events"]} == {ANA}
    assert {"accepted", "read"} <= {e["type"] for e in doc["events"]}
    assert BOB not in orjson.dumps(doc).decode()

    bob_before = await _export(authed, BOB)
    bob_count = (await authed.get(f"{N}/unread-count", params={"user_id": BOB})).json()
    counts_before = await _event_counts(services)
    ana_events = len(doc["events"])
    async with services.db.connect() as conn:
        items_before = int((await conn.execute(select(func.count(batch_items.c.id)))).scalar_one())
    held = await _held(services, ANA)
    assert all(held[t] for t in held if t != "deliveries") and held["deliveries"] == 1, held

    r = await authed.delete(f"{U}/{ANA}")
    assert r.status_code == 204 and r.content == b""

    assert await _held(services, ANA) == dict.fromkeys(held, 0)
    async with services.db.connect() as conn:
        attempts = await conn.execute(
            select(func.count())
            .select_from(delivery_attempts)
            .where(delivery_attempts.c.delivery_id == ids["delivery"])
        )
        assert attempts.scalar_one() == 0
        items = int((await conn.execute(select(func.count(batch_items.c.id)))).scalar_one())
        assert items == items_before - 1  # the erased user's one held item
        pseudonym = services.privacy.pseudonym(ANA)
        assert pseudonym.startswith("erased:") and ANA not in pseudonym
        renamed = await conn.execute(
            select(func.count()).select_from(events).where(events.c.user_id == pseudonym)
        )
        assert renamed.scalar_one() == ana_events
    assert await _event_counts(services) == counts_before

    # Erased users export nothing; other users are as they were.
    r = await authed.get(f"{U}/{ANA}/export")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    bob_after = await _export(authed, BOB)
    assert {**bob_after, "exported_at": None} == {**bob_before, "exported_at": None}
    assert (await authed.get(f"{N}/unread-count", params={"user_id": BOB})).json() == bob_count

    # Idempotent: again, and for a user never seen, 204 and nothing changes.
    assert (await authed.delete(f"{U}/{ANA}")).status_code == 204
    assert (await authed.delete(f"{U}/nobody-at-all")).status_code == 204
    assert await _event_counts(services) == counts_before
    assert (await authed.get(f"{U}/nobody-at-all/export")).status_code == 404


async def test_a_large_user_is_erased_and_exported_in_batches(
    authed: httpx.AsyncClient, services: Services
) -> None:
    """2,600 notifications (some with deliveries) and their events: many short steps,
    each within the batch size, and an export read page by page."""
    total, batch = 2600, 700
    now = datetime.now(UTC)
    async with services.db.begin() as conn:
        await user_store.ensure(conn, [ANA, BOB], now)
        rows = [
            {
                "user_id": ANA if i < total else BOB,
                "type": "bulk",
                "title": f"n{i}",
                "message": "",
                "template": "simple",
                "priority": "normal",
                "channels": ["in_app"],
                "content": {},
                "data": {"i": i},
                "group_key": None,
                "created_at": now,
                "forced_unread": False,
                "inbox": True,
            }
            for i in range(total + 5)
        ]
        ids = await inbox_store.insert(conn, rows)
        await conn.execute(
            deliveries.insert(),
            [
                {
                    "id": f"00000000-0000-4000-8000-{i:012d}",
                    "notification_id": nid,
                    "user_id": ANA,
                    "channel": "email",
                    "status": "delivered",
                    "priority": 1,
                    "attempts": 1,
                    "next_attempt_at": now,
                    "created_at": now,
                    "updated_at": now,
                }
                for i, nid in enumerate(ids[:total:10])
            ],
        )
        await event_store.append(
            conn,
            [
                {
                    "type": "accepted",
                    "notification_id": nid,
                    "user_id": row["user_id"],
                    "channel": None,
                    "data": {"type": "bulk"},
                    "created_at": now,
                }
                for nid, row in zip(ids, rows, strict=True)
            ],
        )

    doc = await services.privacy.export_document(ANA, batch_size=batch)
    assert [n["title"] for n in doc["notifications"]] == [f"n{i}" for i in range(total)]
    assert sum(len(n["deliveries"]) for n in doc["notifications"]) == math.ceil(total / 10)
    assert len(doc["events"]) == total

    erasure = await services.privacy.erase(ANA, batch_size=batch)
    assert erasure.rows["notifications"] == total
    assert erasure.rows["deliveries"] == math.ceil(total / 10)
    assert erasure.rows["events"] == total
    steps = math.ceil(total / batch)
    # One step per batch of notifications and of events (+ the empty step ending each).
    assert erasure.transactions >= 2 * (steps + 1)
    held = await _held(services, ANA)
    assert sum(held.values()) == 0, held
    async with services.db.connect() as conn:
        left = await conn.execute(
            select(notifications.c.user_id, func.count()).group_by(notifications.c.user_id)
        )
        assert dict(left.all()) == {BOB: 5}
        assert (await conn.execute(select(func.count()).select_from(batches))).scalar_one() == 0
    # The API runs the same erasure with the configured batch size.
    assert (await authed.delete(f"{U}/{BOB}")).status_code == 204
    assert sum((await _held(services, BOB)).values()) == 0


async def test_a_delivery_erased_while_in_flight(
    authed: httpx.AsyncClient, services: Services
) -> None:
    """A worker holding a delivery of a user being erased records its result without
    failing: the other results of its batch are written, the erased one is gone."""
    from clarion.domain.jobs import Result
    from clarion.domain.retry import Outcome

    for user in (ANA, BOB):
        await authed.put(f"{U}/{user}", json={"email": f"{user}@example.com"})
        r = await authed.post(
            N, json={"user_id": user, "type": "t", "title": "x", "channels": ["email"]}
        )
        assert r.status_code == 202
    jobs = await services.deliveries.claim("w1", 10, 60.0)
    assert sorted(j.delivery.user_id for j in jobs) == [ANA, BOB]
    assert (await authed.delete(f"{U}/{ANA}")).status_code == 204
    now = datetime.now(UTC)
    done = await services.deliveries.record(
        "w1", [Result(job=j, outcome=Outcome.DELIVERED, started_at=now, latency_ms=5) for j in jobs]
    )
    assert sorted((res.job.delivery.user_id, status) for res, status in done) == [
        (ANA, "lost"),
        (BOB, "delivered"),
    ]
    assert sum((await _held(services, ANA)).values()) == 0
    async with services.db.connect() as conn:
        logged = await conn.execute(select(func.count()).select_from(delivery_attempts))
        assert logged.scalar_one() == 1  # BOB's
