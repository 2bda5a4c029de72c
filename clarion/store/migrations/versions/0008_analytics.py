"""Analytics: events carry their dimensions, hourly and daily rollups, conversions

Events gain the columns the rollups slice by (notification type, template, priority,
provider, reason, latency, value, experiment and variant) and, on PostgreSQL, the id of
the transaction that wrote them, so the rollup follower can take exactly the events of
finished transactions (docs/analytics.md, "How rollups are kept"). Notifications keep
the key of the stored template they were rendered from.

Revision ID: 0008_analytics
Revises: 0007_api_key_scopes
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_analytics"
down_revision: str | Sequence[str] | None = "0007_api_key_scopes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True)


def _counts(name: str) -> None:
    op.create_table(
        name,
        sa.Column("bucket", Timestamp, nullable=False),
        sa.Column("event", sa.String(20), nullable=False),
        sa.Column("ntype", sa.String(100), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("template", sa.String(20), nullable=False),
        sa.Column("template_key", sa.String(100), nullable=False),
        sa.Column("provider", sa.String(40), nullable=False),
        sa.Column("reason", sa.String(40), nullable=False),
        sa.Column("variant", sa.String(50), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("value_sum", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(
            "bucket",
            "event",
            "ntype",
            "channel",
            "template",
            "template_key",
            "provider",
            "reason",
            "variant",
            name=f"pk_{name}",
        ),
    )


def _latency(name: str) -> None:
    op.create_table(
        name,
        sa.Column("bucket", Timestamp, nullable=False),
        sa.Column("metric", sa.String(20), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("ntype", sa.String(100), nullable=False),
        sa.Column("variant", sa.String(50), nullable=False),
        sa.Column("le", sa.SmallInteger(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "bucket", "metric", "channel", "ntype", "variant", "le", name=f"pk_{name}"
        ),
    )


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("template_key", sa.String(100), nullable=True))
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ntype", sa.String(100), nullable=True))
        batch_op.add_column(sa.Column("template", sa.String(20), nullable=True))
        batch_op.add_column(sa.Column("template_key", sa.String(100), nullable=True))
        batch_op.add_column(sa.Column("priority", sa.String(10), nullable=True))
        batch_op.add_column(sa.Column("provider", sa.String(40), nullable=True))
        batch_op.add_column(sa.Column("reason", sa.String(40), nullable=True))
        batch_op.add_column(sa.Column("latency_ms", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("value", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("experiment", sa.String(100), nullable=True))
        batch_op.add_column(sa.Column("variant", sa.String(50), nullable=True))
        batch_op.add_column(sa.Column("txid", sa.BigInteger(), nullable=True))
        batch_op.create_index("ix_events_notification_id", ["notification_id"], unique=False)
        batch_op.drop_index("ix_events_created_at")
        batch_op.create_index("ix_events_created_at_id", ["created_at", "id"], unique=False)
    if postgres:
        # Events written before this migration have no transaction id: the follower
        # starts after them (see the cursor row below) and they are not rolled up.
        op.execute(
            "ALTER TABLE events ALTER COLUMN txid SET DEFAULT (pg_current_xact_id()::text::bigint)"
        )
        op.create_index(
            "ix_events_txid_id",
            "events",
            ["txid", "id"],
            postgresql_where=sa.text("txid IS NOT NULL"),
        )
    _counts("event_counts_hourly")
    _counts("event_counts_daily")
    _latency("latency_hourly")
    _latency("latency_daily")
    op.create_table(
        "analytics_cursor",
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("txid", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_analytics_cursor"),
    )
    op.create_table(
        "health_alerts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("started_at", Timestamp, nullable=False),
        sa.Column("ended_at", Timestamp, nullable=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("lowest", sa.Float(), nullable=False),
        sa.Column("window", sa.String(10), nullable=True),
        sa.Column("open", sa.Boolean(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_health_alerts"),
    )
    op.create_index("uq_health_alerts_open", "health_alerts", ["open"], unique=True)
    op.create_table(
        "conversions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("notification_id", sa.BigInteger(), nullable=True),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_conversions"),
    )
    op.create_index(
        "uq_conversions_notification_id_name",
        "conversions",
        ["notification_id", "name"],
        unique=True,
        postgresql_where=sa.text("notification_id IS NOT NULL"),
        sqlite_where=sa.text("notification_id IS NOT NULL"),
    )
    op.create_index("ix_conversions_user_id_created_at", "conversions", ["user_id", "created_at"])


def downgrade() -> None:
    op.drop_table("conversions")
    op.drop_table("health_alerts")
    op.drop_table("analytics_cursor")
    for name in ("latency_daily", "latency_hourly", "event_counts_daily", "event_counts_hourly"):
        op.drop_table(name)
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_events_txid_id", table_name="events")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_notification_id")
        batch_op.drop_index("ix_events_created_at_id")
        batch_op.create_index("ix_events_created_at", ["created_at"], unique=False)
        for col in (
            "txid",
            "variant",
            "experiment",
            "value",
            "latency_ms",
            "reason",
            "provider",
            "priority",
            "template_key",
            "template",
            "ntype",
        ):
            batch_op.drop_column(col)
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_column("template_key")
