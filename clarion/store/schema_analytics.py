"""The analytics tables beside ``events`` (docs/analytics.md): rollups, the rollup
follower's cursor, health alerts and conversions. Part of ``schema.metadata``."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    SmallInteger,
    String,
    Table,
    text,
)

from clarion.store.schema_base import BigId, Timestamp, metadata

# Rollups of events (docs/analytics.md): counts per hour and per day and dimension, and
# latency histograms with fixed bucket edges (domain/latency.py). Dimensions are '' rather
# than NULL so that they can be part of the primary key.


def _rollup_counts(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("bucket", Timestamp, primary_key=True),
        Column("event", String(20), primary_key=True),
        Column("ntype", String(100), primary_key=True),
        Column("channel", String(20), primary_key=True),
        Column("template", String(20), primary_key=True),
        Column("template_key", String(100), primary_key=True),
        Column("provider", String(40), primary_key=True),
        Column("reason", String(40), primary_key=True),
        Column("variant", String(50), primary_key=True),
        Column("count", BigInteger, nullable=False),
        Column("value_sum", Float, nullable=False),
    )


def _rollup_latency(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("bucket", Timestamp, primary_key=True),
        Column("metric", String(20), primary_key=True),  # delivered | seen | read
        Column("channel", String(20), primary_key=True),
        Column("ntype", String(100), primary_key=True),
        Column("variant", String(50), primary_key=True),
        Column("le", SmallInteger, primary_key=True),  # the histogram bucket's index
        Column("count", BigInteger, nullable=False),
    )


event_counts_hourly = _rollup_counts("event_counts_hourly")
event_counts_daily = _rollup_counts("event_counts_daily")
latency_hourly = _rollup_latency("latency_hourly")
latency_daily = _rollup_latency("latency_daily")


# The narrow rollups (domain/rollup.py): the same sums over fewer dimensions, kept by the
# same follower in the same transaction, for the reads that need only these.
def _narrow(name: str, dims: tuple[tuple[str, int], ...], *, counts: bool) -> Table:
    sums = (
        [Column("count", BigInteger, nullable=False), Column("value_sum", Float, nullable=False)]
        if counts
        else [Column("count", BigInteger, nullable=False)]
    )
    return Table(
        name,
        metadata,
        Column("bucket", Timestamp, primary_key=True),
        *[Column(d, String(n), primary_key=True) for d, n in dims],
        *([] if counts else [Column("le", SmallInteger, primary_key=True)]),
        *sums,
    )


_TOTAL = (("event", 20), ("channel", 20), ("provider", 40), ("reason", 40))
_TYPE = (
    ("event", 20),
    ("ntype", 100),
    ("template", 20),
    ("template_key", 100),
    ("channel", 20),
    ("reason", 40),
)
_LATENCY_CHANNEL = (("metric", 20), ("channel", 20))
event_totals_hourly = _narrow("event_totals_hourly", _TOTAL, counts=True)
event_totals_daily = _narrow("event_totals_daily", _TOTAL, counts=True)
event_types_hourly = _narrow("event_types_hourly", _TYPE, counts=True)
event_types_daily = _narrow("event_types_daily", _TYPE, counts=True)
latency_channels_hourly = _narrow("latency_channels_hourly", _LATENCY_CHANNEL, counts=False)
latency_channels_daily = _narrow("latency_channels_daily", _LATENCY_CHANNEL, counts=False)

# Where the rollup follower is in the events table: (txid, id) of the last event rolled
# up on PostgreSQL, (0, id) on SQLite. One row per follower name.
analytics_cursor = Table(
    "analytics_cursor",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("txid", BigInteger, nullable=False),
    Column("event_id", BigInteger, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

# Episodes of a health score below the alert threshold: one alert each (docs/analytics.md).
health_alerts = Table(
    "health_alerts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("started_at", Timestamp, nullable=False),
    Column("ended_at", Timestamp),  # NULL: still below the threshold
    Column("score", Float, nullable=False),  # the score that opened it
    Column("lowest", Float, nullable=False),
    Column("window", String(10)),
    # True while open, NULL once ended: the unique index lets one episode be open at a
    # time, so two processes seeing the same drop send one alert.
    Column("open", Boolean),
    Index("uq_health_alerts_open", "open", unique=True),
)

# Outcomes the application reports (POST .../conversions): one per (notification, name).
conversions = Table(
    "conversions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("notification_id", BigInteger),  # NULL: a user's conversion nothing is credited with
    Column("user_id", String(255), nullable=False),
    Column("name", String(100), nullable=False),
    Column("value", Float),
    Column("created_at", Timestamp, nullable=False),
    Index(
        "uq_conversions_notification_id_name",
        "notification_id",
        "name",
        unique=True,
        postgresql_where=text("notification_id IS NOT NULL"),
        sqlite_where=text("notification_id IS NOT NULL"),
    ),
    Index("ix_conversions_user_id_created_at", "user_id", "created_at"),
)
