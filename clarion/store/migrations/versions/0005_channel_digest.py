"""channel digests: deliveries held over a user's per-channel rate limit

Revision ID: 0005_channel_digest
Revises: 0004_pipeline
Create Date: 2026-11-25 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_channel_digest"
down_revision: str | Sequence[str] | None = "0004_pipeline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "channel_digests",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("item_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("delivery_id", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_digests")),
    )
    with op.batch_alter_table("channel_digests", schema=None) as batch_op:
        batch_op.create_index(
            "ix_channel_digests_status_due_at", ["status", "due_at"], unique=False
        )
        batch_op.create_index(
            "uq_channel_digests_open",
            ["user_id", "channel"],
            unique=True,
            postgresql_where=sa.text("status = 'open'"),
            sqlite_where=sa.text("status = 'open'"),
        )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("digest_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("content", sa.JSON(), nullable=True))
        batch_op.create_index("ix_deliveries_digest_id", ["digest_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_digest_id")
        batch_op.drop_column("content")
        batch_op.drop_column("digest_id")
    with op.batch_alter_table("channel_digests", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_channel_digests_open",
            postgresql_where=sa.text("status = 'open'"),
            sqlite_where=sa.text("status = 'open'"),
        )
        batch_op.drop_index("ix_channel_digests_status_due_at")
    op.drop_table("channel_digests")
