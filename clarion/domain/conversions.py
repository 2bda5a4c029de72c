"""A conversion the application reported (docs/analytics.md, "Conversions"), as a value
built from its row (``from_row``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Conversion:
    """One row of ``conversions``: ``notification_id`` is ``None`` for a user's
    conversion credited to no notification; ``id`` is ``None`` until it is stored."""

    notification_id: int | None
    user_id: str
    name: str
    value: float | None
    created_at: datetime
    id: int | None = None

    @property
    def attributed(self) -> bool:
        return self.notification_id is not None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Conversion:
        value = row["value"]
        return cls(
            notification_id=row["notification_id"],
            user_id=row["user_id"],
            name=row["name"],
            value=None if value is None else float(value),
            created_at=row["created_at"],
            id=row["id"],
        )
