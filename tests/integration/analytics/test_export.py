"""The raw export over many pages: every event once, in time order, each line the event's
columns with times in ISO 8601; CSV with its header; a reader that stops early leaves
nothing running."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from clarion.domain.events import event_row
from clarion.domain.types import EventType
from clarion.services.container import Services
from clarion.store import events as event_store

T0 = datetime(2026, 11, 1, tzinfo=UTC)


async def _write(services: Services, n: int) -> None:
    rows = [
        event_row(
            EventType.DELIVERED if i % 3 else EventType.ACCEPTED,
            # Some share a time (the page boundary is on (created_at, id)); one on a whole
            # second (no microseconds in its ISO form).
            T0 + timedelta(seconds=i // 2, microseconds=0 if i == 4 else 250 * i),
            user_id=f"u{i % 4}",
            notification_id=i + 1,
            dims={"ntype": "order", "template": "simple", "priority": "normal"},
            channel="webhook",
            data={"delivery_id": i, "note": 'a,"b"\n'} if i % 2 else None,
            latency_ms=i * 10,
            value=None,
        )
        for i in range(n)
    ]
    async with services.db.begin() as conn:
        await event_store.append(conn, rows)


def _expected(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


async def test_every_event_once_in_order_across_pages(services: Services) -> None:
    await _write(services, 23)
    span = (T0, T0 + timedelta(hours=1))
    body = b"".join([c async for c in services.analytics.export(*span, {}, page=4)])
    lines = [orjson.loads(line) for line in body.splitlines()]
    assert [e["notification_id"] for e in lines] == list(range(1, 24))
    # Each line is exactly the row's columns, times as isoformat() writes them.
    async with services.db.connect() as conn:
        raw = await event_store.page(conn, *span, {}, None, 100)
    want = [_expected(dict(zip(event_store.EXPORTED, r, strict=True))) for r in raw]
    assert lines == want
    assert lines[4]["created_at"] == want[4]["created_at"] and "txid" not in lines[0]
    filtered = [c async for c in services.analytics.export(*span, {"type": "accepted"}, page=2)]
    assert len(b"".join(filtered).splitlines()) == 8


async def test_csv_has_a_header_and_json_data(services: Services) -> None:
    await _write(services, 7)
    span = (T0, T0 + timedelta(hours=1))
    text = b"".join([c async for c in services.analytics.export(*span, {}, "csv", page=3)])
    table = list(csv.DictReader(io.StringIO(text.decode())))
    assert [int(r["notification_id"]) for r in table] == list(range(1, 8))
    assert orjson.loads(table[1]["data"]) == {"delivery_id": 1, "note": 'a,"b"\n'}
    assert table[0]["data"] == "" and table[0]["created_at"].startswith("2026-11-01T00:00:00")


async def test_a_reader_stopping_early_leaves_no_read_running(services: Services) -> None:
    await _write(services, 12)
    stream = services.analytics.export(T0, T0 + timedelta(hours=1), {}, page=2)
    first = await stream.__anext__()
    assert len(first.splitlines()) == 2
    await stream.aclose()
    # The page being read ahead is cancelled with the stream, not left to finish.
    reads = [t for t in asyncio.all_tasks() if "pages.<locals>.read" in _name(t)]
    assert all(t.done() or t.cancelling() for t in reads)


def _name(task: asyncio.Task[Any]) -> str:
    return str(getattr(task.get_coro(), "__qualname__", ""))
