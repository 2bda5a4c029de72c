"""Stored templates, preferences and batching rules

A branch of its own off 0001 (delivery tables are 0002), so the two features migrate
independently; ``clarion migrate`` upgrades "heads". Generated with autogenerate against
a database at 0001, keeping only this feature's tables.

Revision ID: 0003_smart
Revises: 0001
Create Date: 2026-11-23 23:55:11.975813
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# The id is written into every deployed database (alembic_version): it stays as it was.
revision: str = "0003_smart"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "templates",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("bodies", sa.JSON(), nullable=False),
        sa.Column("default_locale", sa.String(length=35), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_templates")),
    )
    op.create_table(
        "preferences",
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_preferences")),
    )
    op.create_table(
        "batching_rules",
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("rule", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("type", name=op.f("pk_batching_rules")),
    )


def downgrade() -> None:
    op.drop_table("batching_rules")
    op.drop_table("preferences")
    op.drop_table("templates")
