"""The operator dashboard's own rows: signed-in sessions and the audit log."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.domain.dashboard import AuditEntry, DashboardSession
from clarion.store.schema import api_keys, audit_log, dashboard_sessions

# --- sessions ---------------------------------------------------------------------------------


async def add_session(conn: AsyncConnection, made: DashboardSession) -> None:
    row = {c.name: getattr(made, c.name) for c in dashboard_sessions.c}
    row["role"] = made.role.value
    await conn.execute(dashboard_sessions.insert().values(**row))


async def session(conn: AsyncConnection, session_hash: str) -> DashboardSession | None:
    """The session with its key's ``key_revoked_at`` (a revoked key ends its sessions)."""
    s = dashboard_sessions
    stmt = (
        select(s, api_keys.c.revoked_at.label("key_revoked_at"))
        .join(api_keys, api_keys.c.id == s.c.api_key_id)
        .where(s.c.id == session_hash)
    )
    row = (await conn.execute(stmt)).first()
    return DashboardSession.from_row(row._mapping) if row is not None else None


async def revoke_session(conn: AsyncConnection, session_hash: str, now: datetime) -> bool:
    stmt = (
        update(dashboard_sessions)
        .where(dashboard_sessions.c.id == session_hash, dashboard_sessions.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return bool((await conn.execute(stmt)).rowcount)


async def purge_sessions(conn: AsyncConnection, before: datetime) -> int:
    """Forget sessions that ended (expired or revoked) before ``before``."""
    stmt = delete(dashboard_sessions).where(
        or_(dashboard_sessions.c.expires_at < before, dashboard_sessions.c.revoked_at < before)
    )
    return int((await conn.execute(stmt)).rowcount or 0)


# --- the audit log ----------------------------------------------------------------------------


async def add_audit(conn: AsyncConnection, entry: AuditEntry) -> None:
    row = {f.name: getattr(entry, f.name) for f in fields(entry) if f.name != "id"}
    await conn.execute(audit_log.insert().values(**row))


async def audit_page(
    conn: AsyncConnection,
    *,
    before_id: int | None,
    limit: int,
    action: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[AuditEntry]:
    """Newest first, below ``before_id`` (the previous page's last id)."""
    cond = []
    if before_id is not None:
        cond.append(audit_log.c.id < before_id)
    if action:
        cond.append(audit_log.c.action == action)
    if start is not None:
        cond.append(audit_log.c.at >= start)
    if end is not None:
        cond.append(audit_log.c.at < end)
    stmt = select(audit_log).where(*cond).order_by(audit_log.c.id.desc()).limit(limit)
    return [AuditEntry.from_row(r._mapping) for r in await conn.execute(stmt)]
