"""send pipeline: batches (digests), batch items, scheduled sends

Merges the delivery (0002) and templates-preferences-batching (0003) branches. Generated with autogenerate
against a SQLite database migrated to heads, keeping only this feature's tables.

Revision ID: 0004_pipeline
Revises: 0002_delivery, 0003_smart
Create Date: 2026-11-24 00:23:51.678606
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_pipeline"
down_revision: str | Sequence[str] | None = ("0002_delivery", "0003_smart")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("group_key", sa.String(length=200), server_default=sa.text("''"), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("rule", sa.JSON(), nullable=False),
        sa.Column("locale", sa.String(length=35), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("flush_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("item_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("notification_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
    )
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.create_index("ix_batches_status_flush_at", ["status", "flush_at"], unique=False)
        batch_op.create_index(
            "uq_batches_open",
            ["user_id", "type", "group_key"],
            unique=True,
            postgresql_where=sa.text("status = 'open'"),
            sqlite_where=sa.text("status = 'open'"),
        )

    op.create_table(
        "scheduled_sends",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancellation_key", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("command", sa.JSON(), nullable=False),
        sa.Column("notification_id", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduled_sends")),
    )
    with op.batch_alter_table("scheduled_sends", schema=None) as batch_op:
        batch_op.create_index(
            "ix_scheduled_sends_cancellation_key", ["cancellation_key"], unique=False
        )
        batch_op.create_index(
            "ix_scheduled_sends_status_due_at", ["status", "due_at"], unique=False
        )
        batch_op.create_index(
            "ix_scheduled_sends_user_id_due_at", ["user_id", "due_at"], unique=False
        )

    op.create_table(
        "batch_items",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("batch_id", sa.String(length=36), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("actor", sa.JSON(), nullable=True),
        sa.Column("command", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("folded_into", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_batch_items_batch_id_batches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batch_items")),
    )
    with op.batch_alter_table("batch_items", schema=None) as batch_op:
        batch_op.create_index("ix_batch_items_batch_id", ["batch_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("batch_items", schema=None) as batch_op:
        batch_op.drop_index("ix_batch_items_batch_id")

    op.drop_table("batch_items")
    with op.batch_alter_table("scheduled_sends", schema=None) as batch_op:
        batch_op.drop_index("ix_scheduled_sends_user_id_due_at")
        batch_op.drop_index("ix_scheduled_sends_status_due_at")
        batch_op.drop_index("ix_scheduled_sends_cancellation_key")

    op.drop_table("scheduled_sends")
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_batches_open",
            postgresql_where=sa.text("status = 'open'"),
            sqlite_where=sa.text("status = 'open'"),
        )
        batch_op.drop_index("ix_batches_status_flush_at")

    op.drop_table("batches")
