"""The dashboard's searches across users: notifications by type, dead letters by time

Revision ID: 0012_dashboard_indexes
Revises: 0011_dashboard
Create Date: 2026-12-07 00:00:00

Without them, notifications of one type (no user given) were found by walking every
notification newest first and keeping that type's, and the dead-letter list sorted every
dead delivery ever kept to show the latest 200.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_dashboard_indexes"
down_revision: str | Sequence[str] | None = "0011_dashboard"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_notifications_type_id", "notifications", ["type", "id"], unique=False)
    # Dead rows only: the other statuses change on every step of a delivery.
    op.create_index(
        "ix_deliveries_dead_updated_at",
        "deliveries",
        ["updated_at", "id"],
        unique=False,
        postgresql_where=sa.text("status = 'dead'"),
        sqlite_where=sa.text("status = 'dead'"),
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_dead_updated_at", table_name="deliveries")
    op.drop_index("ix_notifications_type_id", table_name="notifications")
