"""A stored ``Idempotency-Key`` record as a value built from its row (``from_row``); the
rules that judge it live in ``services/idempotency.py``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """One row of ``idempotency_keys``, scoped to the API key that used it:
    ``status_code`` is ``None`` while the request that claimed it has not completed it;
    ``response`` is the body to replay once it has."""

    api_key_id: str
    key: str
    request_hash: str
    status_code: int | None
    response: Any
    created_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> IdempotencyRecord:
        status = row["status_code"]
        return cls(
            api_key_id=row["api_key_id"],
            key=row["key"],
            request_hash=row["request_hash"],
            status_code=None if status is None else int(status),
            response=row["response"],
            created_at=row["created_at"],
        )
