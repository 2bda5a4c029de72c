"""What waits before it becomes a notification, as values built from rows (``from_row``):
a batch and its items (docs/batching.md), a scheduled send (docs/scheduling.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clarion.domain.types import HoldStatus, ScheduledStatus


@dataclass(frozen=True, slots=True)
class Batch:
    """One row of ``batches``: the items of (user, type, group_key) held by a batching
    rule (``rule``, as it was when the batch opened) until ``flush_at``."""

    id: str
    key: str
    user_id: str
    type: str
    group_key: str  # '' for none
    status: HoldStatus
    rule: Mapping[str, Any]
    locale: str | None
    opened_at: datetime
    flush_at: datetime | None
    closed_at: datetime | None
    item_count: int
    notification_id: int | None  # once flushed: what its items were folded into

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Batch:
        return cls(
            id=row["id"],
            key=row["key"],
            user_id=row["user_id"],
            type=row["type"],
            group_key=row["group_key"],
            status=HoldStatus(row["status"]),
            rule=row["rule"],
            locale=row["locale"],
            opened_at=row["opened_at"],
            flush_at=row["flush_at"],
            closed_at=row["closed_at"],
            item_count=row["item_count"],
            notification_id=row["notification_id"],
        )


@dataclass(frozen=True, slots=True)
class HeldItem:
    """One row of ``batch_items``: a send held in a batch (``command``: the send as
    accepted, which the batch's flush builds on)."""

    id: int
    batch_id: str
    title: str
    message: str
    data: Mapping[str, Any]
    actor: Mapping[str, Any] | None
    command: Mapping[str, Any]
    created_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> HeldItem:
        return cls(
            id=row["id"],
            batch_id=row["batch_id"],
            title=row["title"],
            message=row["message"],
            data=row["data"] or {},
            actor=row["actor"] or None,
            command=row["command"],
            created_at=row["created_at"],
        )


@dataclass(frozen=True, slots=True)
class ScheduledSend:
    """One row of ``scheduled_sends``: one recipient's send, due at ``due_at``."""

    id: str
    user_id: str
    due_at: datetime
    status: ScheduledStatus
    command: Mapping[str, Any]
    created_at: datetime
    updated_at: datetime
    cancellation_key: str | None = None
    notification_id: int | None = None
    error: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> ScheduledSend:
        return cls(
            id=row["id"],
            user_id=row["user_id"],
            due_at=row["due_at"],
            status=ScheduledStatus(row["status"]),
            command=row["command"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            cancellation_key=row["cancellation_key"],
            notification_id=row["notification_id"],
            error=row["error"],
        )
