"""A stored notification as a value: one row of ``notifications`` (``from_row``), what the
worker renders for every channel and what events take their dimensions from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Notification:
    id: int
    user_id: str
    type: str
    title: str
    message: str
    template: str
    priority: str
    channels: Sequence[str]
    content: Mapping[str, Any]
    data: Mapping[str, Any]
    created_at: datetime
    group_key: str | None = None
    template_key: str | None = None
    experiment_id: str | None = None
    variant: str | None = None
    seen_at: datetime | None = None
    read_at: datetime | None = None
    archived_at: datetime | None = None
    forced_unread: bool = False
    inbox: bool = True

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Notification:
        return cls(
            id=row["id"],
            user_id=row["user_id"],
            type=row["type"],
            title=row["title"],
            message=row["message"],
            template=row["template"],
            priority=row["priority"],
            channels=row["channels"],
            content=row["content"] or {},
            data=row["data"] or {},
            created_at=row["created_at"],
            group_key=row["group_key"],
            template_key=row["template_key"],
            experiment_id=row["experiment_id"],
            variant=row["variant"],
            seen_at=row["seen_at"],
            read_at=row["read_at"],
            archived_at=row["archived_at"],
            forced_unread=bool(row["forced_unread"]),
            inbox=bool(row["inbox"]),
        )
