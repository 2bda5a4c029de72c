"""The A/B experiment tables (docs/experiments.md). Part of ``schema.metadata``."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    text,
)

from clarion.store.schema_base import Timestamp, metadata

# A/B experiments (docs/experiments.md). ``config`` holds the variants, weights, holdout,
# metric, guardrails and the statistical plan, as validated by domain/experiments.py.
experiments = Table(
    "experiments",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("target_type", String(100)),
    Column("target_template", String(100)),
    Column("status", String(20), nullable=False),  # draft|running|paused|stopped|completed
    Column("config", JSON, nullable=False),
    Column("planned_per_arm", Integer, nullable=False),
    Column("winner", String(50)),
    Column("winner_at", Timestamp),
    Column("winner_reason", Text),
    Column("started_at", Timestamp),
    Column("stopped_at", Timestamp),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    # One live experiment per target at a time: which variant a send gets is then never
    # ambiguous (completed ones keep sending their winner, and count as live).
    Index(
        "uq_experiments_live_type",
        "target_type",
        unique=True,
        postgresql_where=text("status IN ('running', 'paused', 'completed')"),
        sqlite_where=text("status IN ('running', 'paused', 'completed')"),
    ),
    Index(
        "uq_experiments_live_template",
        "target_template",
        unique=True,
        postgresql_where=text("status IN ('running', 'paused', 'completed')"),
        sqlite_where=text("status IN ('running', 'paused', 'completed')"),
    ),
)

# Who got which variant, first time and for good; and per variant the users assigned and
# the users with each outcome (counted once per user by the rollup follower).
experiment_assignments = Table(
    "experiment_assignments",
    metadata,
    Column("experiment_id", String(36), primary_key=True),
    Column("user_id", String(255), primary_key=True),
    Column("variant", String(50), nullable=False),
    Column("assigned_at", Timestamp, nullable=False),
    Column("read_at", Timestamp),
    Column("clicked_at", Timestamp),
    Column("converted_at", Timestamp),
    Column("unsubscribed_at", Timestamp),
    Column("failed_at", Timestamp),
)

experiment_arms = Table(
    "experiment_arms",
    metadata,
    Column("experiment_id", String(36), primary_key=True),
    Column("variant", String(50), primary_key=True),
    Column("users", BigInteger, nullable=False, default=0, server_default=text("0")),
    Column("read", BigInteger, nullable=False, default=0, server_default=text("0")),
    Column("clicked", BigInteger, nullable=False, default=0, server_default=text("0")),
    Column("converted", BigInteger, nullable=False, default=0, server_default=text("0")),
    Column("unsubscribed", BigInteger, nullable=False, default=0, server_default=text("0")),
    Column("failed", BigInteger, nullable=False, default=0, server_default=text("0")),
    # The running minimum of the always-valid p-value (docs/experiments.md).
    Column("p_sequential", Float),
)
