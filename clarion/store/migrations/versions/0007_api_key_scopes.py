"""API keys: scopes and a limit of their own; users' batches and channel digests by user

Keys that existed before get ``admin``, which is what they could do. The two indexes let
a user's data be erased and exported without scanning every batch and channel digest
(the existing unique indexes cover open rows only).

Revision ID: 0007_api_key_scopes
Revises: 0006_fold_by_batch
Create Date: 2026-11-26 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_api_key_scopes"
down_revision: str | Sequence[str] | None = "0006_fold_by_batch"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "scopes", sa.String(length=100), server_default=sa.text("'admin'"), nullable=False
            )
        )
        batch_op.add_column(sa.Column("rate_limit", sa.String(length=100), nullable=True))
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.create_index("ix_batches_user_id", ["user_id"], unique=False)
    with op.batch_alter_table("channel_digests", schema=None) as batch_op:
        batch_op.create_index("ix_channel_digests_user_id", ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("channel_digests", schema=None) as batch_op:
        batch_op.drop_index("ix_channel_digests_user_id")
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_index("ix_batches_user_id")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("rate_limit")
        batch_op.drop_column("scopes")
