"""batch items: drop folded_into (an item is folded into its batch's notification)

Every item of a batch is folded into the one notification the batch became, so the
batch row's ``notification_id`` already says it; writing it into each item made a
flush update every item row (a million row updates for a million pending items).

Revision ID: 0006_fold_by_batch
Revises: 0005_channel_digest
Create Date: 2026-11-24 03:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_fold_by_batch"
down_revision: str | Sequence[str] | None = "0005_channel_digest"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("batch_items", schema=None) as batch_op:
        batch_op.drop_column("folded_into")


def downgrade() -> None:
    with op.batch_alter_table("batch_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("folded_into", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE batch_items SET folded_into = "
        "(SELECT notification_id FROM batches WHERE batches.id = batch_items.batch_id)"
    )
