"""Append-only analytics facts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.store import bulk
from clarion.store.schema import events


async def append(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Append events (inside a transaction)."""
    await bulk.insert(conn, events, rows)
