"""store/bulk.py on both databases: ids in the order given, JSON columns, defaults."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from clarion.services.container import Services
from clarion.store import bulk
from clarion.store import events as event_store
from clarion.store import users as user_store
from clarion.store.schema import events, notifications, users


def _row(i: int, data: dict[str, object], now: datetime) -> dict[str, object]:
    return {
        "user_id": f"u{i % 3}",
        "type": "t",
        "title": f"n{i}",
        "message": "",
        "template": "simple",
        "priority": "normal",
        "channels": ["in_app"],
        "content": {"title": f"n{i}", "i": i},
        "data": data,
        "group_key": None,
        "created_at": now,
        "forced_unread": False,
        "inbox": True,
    }


async def test_ids_follow_the_rows_and_json_round_trips(services: Services) -> None:
    now = datetime.now(UTC)
    shared = {"actor": {"id": "a1", "name": "Ana"}, "n": [1, 2, 3]}
    rows = [_row(i, shared if i % 2 else {"own": i}, now) for i in range(250)]
    async with services.db.begin() as conn:
        await user_store.ensure(conn, ["u0", "u1", "u2"], now)
        ids = await bulk.insert_with_ids(conn, notifications, rows)
        [single] = await bulk.insert_with_ids(conn, notifications, [_row(999, {}, now)])
    assert len(ids) == len(set(ids)) == 250 and ids == sorted(ids) and single > ids[-1]
    async with services.db.connect() as conn:
        stored = {
            r.id: r
            for r in await conn.execute(
                select(notifications).where(notifications.c.id.in_([*ids, single]))
            )
        }
    for i, nid in enumerate(ids):
        r = stored[nid]
        assert (r.title, r.user_id, r.content) == (f"n{i}", f"u{i % 3}", {"title": f"n{i}", "i": i})
        assert r.data == (shared if i % 2 else {"own": i})
        assert r.seen_at is None and r.archived_at is None
    assert stored[single].title == "n999"


async def test_events_in_a_transaction_first_or_after_other_statements(
    services: Services,
) -> None:
    now = datetime.now(UTC)
    rows = [
        {
            "type": "accepted",
            "notification_id": i,
            "user_id": "u",
            "channel": None,
            "data": {"i": i},
            "created_at": now,
        }
        for i in range(5)
    ]
    # First statement of its transaction (the driver path needs one run before it).
    async with services.db.begin() as conn:
        await event_store.append(conn, rows[:2])
    async with services.db.begin() as conn:
        await user_store.ensure(conn, ["u"], now)
        await event_store.append(conn, rows[2:])
    async with services.db.connect() as conn:
        got = [(r.notification_id, r.data) for r in await conn.execute(select(events))]
    assert sorted(got) == [(i, {"i": i}) for i in range(5)]


async def test_a_failed_transaction_leaves_nothing(services: Services) -> None:
    now = datetime.now(UTC)
    try:
        async with services.db.begin() as conn:
            await user_store.ensure(conn, ["u0", "u1", "u2"], now)
            await bulk.insert_with_ids(conn, notifications, [_row(i, {}, now) for i in range(10)])
            raise RuntimeError("abort")
    except RuntimeError:
        pass
    async with services.db.connect() as conn:
        assert (await conn.execute(select(notifications.c.id))).first() is None


async def test_constant_defaults_are_filled_in(services: Services) -> None:
    now = datetime.now(UTC)
    rows = [_row(i, {}, now) for i in range(3)]
    for r in rows:
        del r["forced_unread"], r["inbox"]
    async with services.db.begin() as conn:
        await user_store.ensure(conn, ["u0", "u1", "u2"], now)
        ids = await bulk.insert_with_ids(conn, notifications, rows)
    async with services.db.connect() as conn:
        got = (
            await conn.execute(
                select(notifications.c.forced_unread, notifications.c.inbox).where(
                    notifications.c.id.in_(ids)
                )
            )
        ).all()
    assert [tuple(r) for r in got] == [(False, True)] * 3


async def test_conflicts_handled_as_the_statement_says(services: Services) -> None:
    """``ensure`` ignores existing users, ``ensure_counted`` adds to their counters: the
    same statements on SQLite and, as one unnest insert, on PostgreSQL."""
    now = datetime.now(UTC)
    async with services.db.begin() as conn:
        await user_store.ensure(conn, ["c0", "c1"], now)
        await user_store.ensure_counted(conn, {"c1": (2, 1), "c2": (1, 1), "c3": (0, 0)}, now)
        await user_store.ensure(conn, ["c0", "c1", "c2", "c4"], now)
        await user_store.ensure_counted(conn, {f"c{i}": (1, 0) for i in range(5)}, now)
    async with services.db.connect() as conn:
        rows = {
            r.user_id: (r.unread_count, r.unseen_count, r.data)
            for r in await conn.execute(
                select(users).where(users.c.user_id.in_([f"c{i}" for i in range(6)]))
            )
        }
    assert rows == {
        "c0": (1, 0, {}),
        "c1": (3, 1, {}),
        "c2": (2, 1, {}),
        "c3": (1, 0, {}),
        "c4": (1, 0, {}),
    }
