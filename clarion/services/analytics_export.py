"""The raw event export (docs/analytics.md, "Export"): the events of a range in time
order, encoded as NDJSON or CSV page by page while they are read.

What keeps it fast: rows stay the driver's tuples, each encoded by one ``orjson.dumps``
of ``dict(zip(columns, row))`` (datetimes are encoded by orjson exactly as
``isoformat()`` writes them); pages are big (a round trip and a keyset seek per 20,000
rows); and the next page is read while the current one is encoded and sent, so the
database, the driver's thread (SQLite) and the encoding overlap.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncGenerator, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from clarion.store import events as event_store
from clarion.store.db import Database

#: The columns of an exported event, in order (the CSV header).
COLUMNS: tuple[str, ...] = event_store.EXPORTED
#: Events read per query.
PAGE = 20_000
_AT, _ID = COLUMNS.index("created_at"), COLUMNS.index("id")
_DATA = COLUMNS.index("data")


async def pages(
    db: Database,
    start: datetime,
    end: datetime,
    filters: Mapping[str, Any],
    page: int = PAGE,
) -> AsyncGenerator[Sequence[Sequence[Any]], None]:
    """Events in ``[start, end)`` matching ``filters``, page by page in ``(created_at,
    id)`` order, as tuples in :data:`COLUMNS` order; each page is read while the one
    before it is being used."""

    async def read(after: tuple[datetime, int] | None) -> Sequence[Sequence[Any]]:
        async with db.connect() as conn:
            return await event_store.page(conn, start, end, filters, after, page)

    ahead: asyncio.Task[Sequence[Sequence[Any]]] | None = asyncio.ensure_future(read(None))
    try:
        while ahead is not None:
            rows = await ahead
            ahead = None
            if not rows:
                return
            if len(rows) == page:
                ahead = asyncio.ensure_future(read((rows[-1][_AT], int(rows[-1][_ID]))))
            yield rows
    finally:
        if ahead is not None:  # the reader stopped early (a client went away)
            ahead.cancel()
            await asyncio.wait([ahead])  # its connection is given back before we return


def ndjson(rows: Sequence[Sequence[Any]]) -> bytes:
    """One JSON object per event and line. (``+ b"\\n"`` copies each line into a bytes
    of its own size and frees orjson's bigger buffer at once: keeping those buffers
    alive until the join, as ``OPT_APPEND_NEWLINE`` does, costs 3-4x more.)"""
    dumps, cols = orjson.dumps, COLUMNS
    return b"".join([dumps(dict(zip(cols, r, strict=True))) + b"\n" for r in rows])


def csv_header() -> bytes:
    return (",".join(COLUMNS) + "\r\n").encode()


def csv_rows(rows: Sequence[Sequence[Any]]) -> bytes:
    """CSV rows: times in ISO 8601, ``data`` as JSON, NULL as an empty field."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerows(
        [
            ""
            if v is None
            else orjson.dumps(v).decode()
            if i == _DATA
            else v.isoformat()
            if isinstance(v, datetime)
            else v
            for i, v in enumerate(r)
        ]
        for r in rows
    )
    return out.getvalue().encode()
