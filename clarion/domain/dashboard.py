"""The operator dashboard's own rows as values built from them (``from_row``): a signed-in
session and an audit log entry (docs/dashboard.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clarion.domain.types import ApiScope


@dataclass(frozen=True, slots=True)
class DashboardSession:
    """One row of ``dashboard_sessions`` (``id``: the SHA-256 of the cookie's value), with
    the ``revoked_at`` of its API key as ``key_revoked_at``: revoking the key ends its
    sessions. ``role`` is the scope that opened it, ``admin`` or ``read``."""

    id: str
    api_key_id: str
    role: ApiScope
    csrf: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None
    key_revoked_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> DashboardSession:
        return cls(
            id=row["id"],
            api_key_id=row["api_key_id"],
            role=ApiScope(row["role"]),
            csrf=row["csrf"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            revoked_at=row["revoked_at"],
            key_revoked_at=row["key_revoked_at"],
        )


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One row of ``audit_log``: who (``actor``; ``api_key_id`` when a key), through what
    (``via``), did what to what, and the object before and after (JSON, secrets left
    out). ``id`` is ``None`` until it is stored."""

    at: datetime
    api_key_id: str | None
    actor: str
    via: str
    action: str
    target: str
    before: Any
    after: Any
    id: int | None = None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> AuditEntry:
        return cls(
            at=row["at"],
            api_key_id=row["api_key_id"],
            actor=row["actor"],
            via=row["via"],
            action=row["action"],
            target=row["target"],
            before=row["before"],
            after=row["after"],
            id=int(row["id"]),
        )
