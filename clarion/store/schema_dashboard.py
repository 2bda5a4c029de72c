"""The operator dashboard's tables (docs/dashboard.md): signed-in sessions and the audit
log. Part of ``schema.metadata``."""

from __future__ import annotations

from sqlalchemy import JSON, Column, Index, String, Table

from clarion.store.schema_base import BigId, Timestamp, metadata

# One signed-in dashboard browser: only a SHA-256 of the cookie's value is kept; logout
# (or an expiry) ends it. ``role``: ``admin`` (full) or ``read`` (read-only).
dashboard_sessions = Table(
    "dashboard_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("api_key_id", String(36), nullable=False),
    Column("role", String(10), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=False),
    Column("revoked_at", Timestamp),
)

# Every state-changing action through the dashboard or an admin key: who, when, what,
# and the object before and after (JSON, secrets left out).
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", Timestamp, nullable=False),
    Column("api_key_id", String(36)),
    Column("actor", String(120), nullable=False),
    Column("via", String(20), nullable=False),
    Column("action", String(60), nullable=False),
    Column("target", String(255), nullable=False),
    Column("before", JSON),
    Column("after", JSON),
    Index("ix_audit_log_at", "at"),
)
