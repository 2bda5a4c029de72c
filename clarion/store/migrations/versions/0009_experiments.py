"""A/B experiments: experiments, assignments, per-variant counters; the variant on
notifications and deliveries

Revision ID: 0009_experiments
Revises: 0008_analytics
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_experiments"
down_revision: str | Sequence[str] | None = "0008_analytics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True)
LIVE = "status IN ('running', 'paused', 'completed')"


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("experiment_id", sa.String(36), nullable=True))
        batch_op.add_column(sa.Column("variant", sa.String(50), nullable=True))
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("variant", sa.String(50), nullable=True))
    op.create_table(
        "experiments",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("target_type", sa.String(100), nullable=True),
        sa.Column("target_template", sa.String(100), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("planned_per_arm", sa.Integer(), nullable=False),
        sa.Column("winner", sa.String(50), nullable=True),
        sa.Column("winner_at", Timestamp, nullable=True),
        sa.Column("winner_reason", sa.Text(), nullable=True),
        sa.Column("started_at", Timestamp, nullable=True),
        sa.Column("stopped_at", Timestamp, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_experiments"),
    )
    for column in ("target_type", "target_template"):
        op.create_index(
            f"uq_experiments_live_{column.split('_')[1]}",
            "experiments",
            [column],
            unique=True,
            postgresql_where=sa.text(LIVE),
            sqlite_where=sa.text(LIVE),
        )
    op.create_table(
        "experiment_assignments",
        sa.Column("experiment_id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("variant", sa.String(50), nullable=False),
        sa.Column("assigned_at", Timestamp, nullable=False),
        sa.Column("read_at", Timestamp, nullable=True),
        sa.Column("clicked_at", Timestamp, nullable=True),
        sa.Column("converted_at", Timestamp, nullable=True),
        sa.Column("unsubscribed_at", Timestamp, nullable=True),
        sa.Column("failed_at", Timestamp, nullable=True),
        sa.PrimaryKeyConstraint("experiment_id", "user_id", name="pk_experiment_assignments"),
    )

    def counter(name: str) -> sa.Column[int]:
        return sa.Column(name, sa.BigInteger(), nullable=False, server_default=sa.text("0"))

    op.create_table(
        "experiment_arms",
        sa.Column("experiment_id", sa.String(36), nullable=False),
        sa.Column("variant", sa.String(50), nullable=False),
        counter("users"),
        counter("read"),
        counter("clicked"),
        counter("converted"),
        counter("unsubscribed"),
        counter("failed"),
        sa.Column("p_sequential", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("experiment_id", "variant", name="pk_experiment_arms"),
    )


def downgrade() -> None:
    op.drop_table("experiment_arms")
    op.drop_table("experiment_assignments")
    op.drop_index("uq_experiments_live_template", table_name="experiments")
    op.drop_index("uq_experiments_live_type", table_name="experiments")
    op.drop_table("experiments")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("variant")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_column("variant")
        batch_op.drop_column("experiment_id")
