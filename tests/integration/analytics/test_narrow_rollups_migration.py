"""The migration that adds the narrow rollups fills them from the full rollups already
kept, so a database upgraded with folded events reads the same figures as before; and the
tables it makes are the ones the code declares."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import inspect, select, text

from clarion.store.db import Database
from clarion.store.migrate import alembic_config, upgrade_sync
from clarion.store.schema import metadata
from tests.conftest import PG_ADMIN_URL, _pg_admin, service_missing

NARROW = (
    "event_totals_hourly",
    "event_totals_daily",
    "event_types_hourly",
    "event_types_daily",
    "latency_channels_hourly",
    "latency_channels_daily",
)
B1, B2 = "2026-11-01 00:00:00+00:00", "2026-11-01 01:00:00+00:00"
#: Full rollup rows as a database had them before: (bucket, event, ntype, channel,
#: template, template_key, provider, reason, variant, count, value_sum).
COUNTS = [
    (B1, "accepted", "t1", "in_app", "stored", "k1", "", "", "", 5, 0.0),
    (B1, "accepted", "t1", "", "stored", "k1", "", "", "a", 2, 0.0),
    (B1, "accepted", "t2", "in_app", "inline", "", "", "", "", 3, 0.0),
    (B1, "failed", "t1", "email", "stored", "k1", "smtp", "timeout", "", 4, 0.0),
    (B1, "failed", "t2", "email", "inline", "", "ses", "timeout", "", 1, 0.0),
    (B1, "delivered", "t1", "email", "stored", "k1", "smtp", "outside_inbox", "", 6, 0.0),
    (B1, "delivered", "t1", "push", "stored", "k1", "webpush", "", "b", 7, 0.0),
    (B2, "converted", "t1", "", "stored", "k1", "", "", "", 2, 5.5),
]
#: (bucket, metric, channel, ntype, variant, le, count)
LATENCY = [
    (B1, "delivered", "email", "t1", "", 3, 4),
    (B1, "delivered", "email", "t2", "", 3, 1),
    (B1, "delivered", "email", "t1", "a", 4, 2),
    (B2, "read", "in_app", "t1", "", 9, 8),
]
WANT = {
    "event_totals": {
        ("accepted", "in_app", "", "", 8),
        ("accepted", "", "", "", 2),
        ("failed", "email", "smtp", "timeout", 4),
        ("failed", "email", "ses", "timeout", 1),
        ("delivered", "email", "smtp", "outside_inbox", 6),
        ("delivered", "push", "webpush", "", 7),
        ("converted", "", "", "", 2),
    },
    "event_types": {
        ("accepted", "t1", "stored", "k1", "in_app", "", 5),
        ("accepted", "t1", "stored", "k1", "", "", 2),
        ("accepted", "t2", "inline", "", "in_app", "", 3),
        ("failed", "t1", "stored", "k1", "", "", 4),
        ("failed", "t2", "inline", "", "", "", 1),
        ("delivered", "t1", "stored", "k1", "", "outside_inbox", 6),
        ("delivered", "t1", "stored", "k1", "", "", 7),
        ("converted", "t1", "stored", "k1", "", "", 2),
    },
    "latency_channels": {
        ("delivered", "email", 3, 5),
        ("delivered", "email", 4, 2),
        ("read", "in_app", 9, 8),
    },
}


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new database with no tables yet."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        return
    name = f"clarion_mig_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        service_missing("PostgreSQL at 127.0.0.1:5432", exc)
    yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def test_upgrade_fills_the_narrow_rollups_from_the_full_ones(empty_url: str) -> None:
    await asyncio.to_thread(command.upgrade, alembic_config(empty_url), "0009_experiments")
    db = Database(empty_url)
    try:
        async with db.begin() as conn:
            for grain in ("hourly", "daily"):
                full, lat = (
                    metadata.tables[f"event_counts_{grain}"],
                    metadata.tables[f"latency_{grain}"],
                )
                await conn.execute(full.insert(), [_row(full, r) for r in COUNTS])
                await conn.execute(lat.insert(), [_row(lat, r) for r in LATENCY])
        await asyncio.to_thread(upgrade_sync, empty_url)
        async with db.connect() as conn:
            for grain in ("hourly", "daily"):
                for name, want in WANT.items():
                    got = await conn.execute(select(metadata.tables[f"{name}_{grain}"]))
                    rows = {tuple(r[1:]) for r in got}
                    if name != "latency_channels":  # the value sums: only B2's 5.5
                        assert {r[-1] for r in rows} <= {0.0, 5.5}
                        rows = {r[:-1] for r in rows}
                    assert rows == want, (name, grain)
            # Every table the code declares was made, with the same columns.
            columns = await conn.run_sync(
                lambda c: {t: [col["name"] for col in inspect(c).get_columns(t)] for t in NARROW}
            )
            collations = set()
            if not db.is_sqlite:
                got = await conn.execute(
                    text(
                        "SELECT DISTINCT collation_name FROM information_schema.columns"
                        " WHERE table_name = ANY(:t) AND data_type = 'character varying'"
                    ),
                    {"t": list(NARROW)},
                )
                collations = {r[0] for r in got}
        for t in NARROW:
            assert columns[t] == [c.name for c in metadata.tables[t].columns]
        # PostgreSQL groups these by bytes, not by the locale (see the migration).
        assert collations == (set() if db.is_sqlite else {"C"})
    finally:
        await db.dispose()


def _row(table: Any, values: tuple[Any, ...]) -> dict[str, Any]:
    row = dict(zip([c.name for c in table.columns], values, strict=True))
    row["bucket"] = datetime.fromisoformat(row["bucket"])
    return row
