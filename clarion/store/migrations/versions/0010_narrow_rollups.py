"""Narrow rollups: event totals (event, channel, provider, reason), counts per type and
template, latency per channel; hourly and daily, filled from the full rollups

The same sums as the full rollups over fewer dimensions (domain/rollup.py): the
dashboard, the health score and unfiltered trends read tens of rows per bucket from
these instead of grouping thousands. The follower keeps them from now on in the same
transaction as the full ones; what was folded before is projected here from the full
rollups, so the two agree from the start.

Revision ID: 0010_narrow_rollups
Revises: 0009_experiments
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_narrow_rollups"
down_revision: str | Sequence[str] | None = "0009_experiments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True)

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

#: The projection of a full count row onto the per-type dimensions: the channel of
#: ``accepted`` and the reason of ``delivered``/``sent`` only (domain/rollup.type_key).
_TYPE_SELECT = (
    "event, ntype, template, template_key, "
    "CASE WHEN event = 'accepted' THEN channel ELSE '' END, "
    "CASE WHEN event IN ('delivered', 'sent') THEN reason ELSE '' END"
)


def _dim(length: int) -> sa.types.TypeEngine[str]:
    """A dimension's type: on PostgreSQL with the "C" collation. Reads group by these
    columns, and grouping by sorting compares text by the database's collation, which
    for a locale such as C.UTF-8 costs 5-10x more than comparing bytes; the values are
    names (event kinds, channels, reasons), whose byte order is as good as any."""
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def _table(name: str, dims: tuple[tuple[str, int], ...], *, counts: bool) -> None:
    keys = ["bucket", *(d for d, _ in dims), *([] if counts else ["le"])]
    op.create_table(
        name,
        sa.Column("bucket", Timestamp, nullable=False),
        *[sa.Column(d, _dim(n), nullable=False) for d, n in dims],
        *([] if counts else [sa.Column("le", sa.SmallInteger(), nullable=False)]),
        sa.Column("count", sa.BigInteger(), nullable=False),
        *([sa.Column("value_sum", sa.Float(), nullable=False)] if counts else []),
        sa.PrimaryKeyConstraint(*keys, name=f"pk_{name}"),
    )


def upgrade() -> None:
    totals = ", ".join(d for d, _ in _TOTAL)
    for grain in ("hourly", "daily"):
        _table(f"event_totals_{grain}", _TOTAL, counts=True)
        _table(f"event_types_{grain}", _TYPE, counts=True)
        _table(f"latency_channels_{grain}", _LATENCY_CHANNEL, counts=False)
        full = f"event_counts_{grain}"
        op.execute(
            f"INSERT INTO event_totals_{grain} (bucket, {totals}, count, value_sum) "
            f"SELECT bucket, {totals}, sum(count), sum(value_sum) FROM {full} "
            f"GROUP BY bucket, {totals}"
        )
        types = ", ".join(d for d, _ in _TYPE)
        op.execute(
            f"INSERT INTO event_types_{grain} (bucket, {types}, count, value_sum) "
            f"SELECT bucket, {_TYPE_SELECT}, sum(count), sum(value_sum) FROM {full} "
            f"GROUP BY bucket, {_TYPE_SELECT}"
        )
        op.execute(
            f"INSERT INTO latency_channels_{grain} (bucket, metric, channel, le, count) "
            f"SELECT bucket, metric, channel, le, sum(count) FROM latency_{grain} "
            "GROUP BY bucket, metric, channel, le"
        )
    if op.get_bind().dialect.name == "postgresql":  # plans from real row counts at once
        for grain in ("hourly", "daily"):
            for name in ("event_totals", "event_types", "latency_channels"):
                op.execute(f"ANALYZE {name}_{grain}")


def downgrade() -> None:
    for grain in ("daily", "hourly"):
        for name in ("latency_channels", "event_types", "event_totals"):
            op.drop_table(f"{name}_{grain}")
