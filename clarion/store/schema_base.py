"""What every table module shares: the one ``MetaData`` (with the naming convention
Alembic relies on) and the column types used across tables."""

from __future__ import annotations

from sqlalchemy import BigInteger, DateTime, Integer, MetaData

# One naming convention so Alembic migrations have stable constraint names.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

# BIGINT primary keys that are still INTEGER PRIMARY KEY (rowid aliases) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")
Timestamp = DateTime(timezone=True)
