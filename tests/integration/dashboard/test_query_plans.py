"""The dashboard's heaviest reads use an index on a database big enough that the planner
has a choice: every statement a page runs is captured as it is sent, then EXPLAINed with
its own parameters (sequential scans left enabled, statistics fresh), and none may scan a
big table whole. PostgreSQL only: SQLite's planner has no statistics to mislead it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text

from clarion.services.clock import utcnow
from clarion.services.container import Services

#: Tables that grow without bound: a page must never read one of them whole.
BIG = ("events", "notifications", "deliveries", "users", "delivery_attempts")

SEED = [
    """INSERT INTO users (user_id, data, created_at, updated_at)
       SELECT 'u' || i, '{}', now(), now() FROM generate_series(1, 20000) i""",
    """INSERT INTO notifications (user_id, type, title, message, template, priority,
         channels, content, data, created_at)
       SELECT 'u' || (1 + i % 20000),
         CASE WHEN i % 5000 = 0 THEN 'rare' ELSE 'type' || (i % 40) END, 'n' || i, '',
         'simple', 'normal',
         '["in_app", "webhook"]', '{}', '{}', now() - (200000 - i) * interval '10 second'
       FROM generate_series(1, 200000) i""",
    """INSERT INTO deliveries (id, notification_id, user_id, channel, status, priority,
         attempts, next_attempt_at, last_error, created_at, updated_at)
       SELECT md5(i::text), i, 'u' || (1 + i % 20000), 'webhook',
         CASE WHEN i % 100 = 0 THEN 'dead' ELSE 'delivered' END, 2, 1,
         now(), CASE WHEN i % 100 = 0 THEN 'HTTP 400' END,
         now() - (200000 - i) * interval '10 second', now() - (200000 - i) * interval '10 second'
       FROM generate_series(1, 200000) i""",
    """INSERT INTO events (type, notification_id, user_id, channel, created_at, ntype)
       SELECT (ARRAY['accepted', 'delivered', 'seen', 'read'])[1 + i % 4], 1 + i / 2,
         'u' || (1 + i % 20000), 'webhook',
         now() - (400000 - i) * interval '5 second', 'type' || (i % 40)
       FROM generate_series(1, 400000) i""",
]


@pytest.fixture
def db_url(pg_url: str) -> str:
    return pg_url


@pytest.fixture
def captured(services: Services) -> Iterator[list[tuple[str, Any]]]:
    """Every SELECT sent to the database while the test runs, with its parameters."""
    seen: list[tuple[str, Any]] = []
    engine = services.db.engine.sync_engine

    def before(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            seen.append((statement, params))

    event.listen(engine, "before_cursor_execute", before)
    yield seen
    event.remove(engine, "before_cursor_execute", before)


async def _seed(services: Services) -> None:
    async with services.db.begin() as conn:
        for sql in SEED:
            await conn.execute(text(sql))
    async with services.db.begin() as conn:
        for table in BIG:
            await conn.execute(text(f"ANALYZE {table}"))


async def _plan(services: Services, statement: str, params: Any) -> str:
    async with services.db.connect() as conn:
        rows = await conn.exec_driver_sql("EXPLAIN " + statement, params)
        return "\n".join(str(r[0]) for r in rows)


async def test_heaviest_reads_use_an_index(
    admin: httpx.AsyncClient, services: Services, captured: list[tuple[str, Any]]
) -> None:
    await _seed(services)
    start = (utcnow() - timedelta(days=3)).isoformat()
    pages = {
        "overview": ("/dashboard", {}),
        "by user": ("/dashboard/notifications", {"user_id": "u7"}),
        "by type": ("/dashboard/notifications", {"type": "type3"}),
        "by a rare type": ("/dashboard/notifications", {"type": "rare"}),
        "by type, status, time": (
            "/dashboard/notifications",
            {"type": "type3", "status": "dead", "start": start},
        ),
        "by status": ("/dashboard/notifications", {"status": "dead"}),
        "dead letters": ("/dashboard/dead-letters", {}),
        "dead letters of a user": ("/dashboard/dead-letters", {"user_id": "u100"}),
        "users by prefix": ("/dashboard/users", {"prefix": "u12"}),
        "a user": ("/dashboard/users/u7", {}),
    }
    #: Reads that need an index of their own (migration 0012): without it the plan walks
    #: every notification newest first to find a rare type's few, or sorts every dead
    #: delivery ever kept.
    expected = {
        "by a rare type": "ix_notifications_type_id",
        "dead letters": "ix_deliveries_dead_updated_at",
    }
    problems = []
    for name, (path, params) in pages.items():
        captured.clear()
        r = await admin.get(path, params=params)
        assert r.status_code == 200, (name, r.text[:300])
        assert captured, f"{name}: no statement captured"
        plans = []
        for statement, bound in list(captured):
            plan = await _plan(services, statement, bound)
            plans.append(plan)
            for table in BIG:
                if f"Seq Scan on {table} " in plan + " ":
                    problems.append(f"{name}: Seq Scan on {table}\n{statement}\n{plan}")
        if name in expected and not any(expected[name] in p for p in plans):
            problems.append(f"{name}: {expected[name]} unused\n" + "\n".join(plans))
    assert problems == [], "\n\n".join(problems)
