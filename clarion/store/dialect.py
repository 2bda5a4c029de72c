"""The little that differs between SQLite and PostgreSQL, in one place."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, String, Table, any_, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

_IGNORE: dict[tuple[str, str], Any] = {}


def insert_ignore(conn: AsyncConnection, table: Table) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` for the connection's dialect, built once per
    table (a construct is immutable, and reusing it keeps SQLAlchemy's and store.bulk's
    caches hitting)."""
    key = (conn.dialect.name, table.name)
    stmt = _IGNORE.get(key)
    if stmt is None:
        dialect = postgresql if key[0] == "postgresql" else sqlite
        stmt = _IGNORE[key] = dialect.insert(table).on_conflict_do_nothing()
    return stmt


def upsert(conn: AsyncConnection, table: Table) -> Any:
    """The dialect's INSERT construct with ``on_conflict_do_update`` and ``excluded``."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def row_locked(stmt: Any, conn: AsyncConnection, *, skip_locked: bool = False) -> Any:
    """``stmt`` with ``FOR UPDATE`` (``SKIP LOCKED``: rows other transactions hold are left
    out) on PostgreSQL. SQLite has no row locks and needs none: every writer holds the
    database's write lock (``Database.begin``)."""
    if conn.dialect.name == "postgresql":
        return stmt.with_for_update(skip_locked=skip_locked)
    return stmt


def one_of(conn: AsyncConnection, column: Any, values: Sequence[Any]) -> ColumnElement[bool]:
    """``column IN (values)``, as ``column = ANY($1)`` on PostgreSQL.

    An ``IN`` list renders one placeholder per value, so every list length is a new SQL
    text: SQLAlchemy expands it on every call, asyncpg's statement cache misses and
    PostgreSQL parses and plans it again. One array parameter keeps the text, and so the
    prepared statement, the same for every length."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=_array_of(column)))  # type: ignore[no-any-return]
    return column.in_(list(values))  # type: ignore[no-any-return]


def one_of_param(dialect: str, column: Any, name: str) -> ColumnElement[bool]:
    """:func:`one_of` for a statement built once and run many times (the worker's claims,
    results and reads): the values come at execution, as the list parameter ``name``.
    A new statement object per call costs SQLAlchemy a cache-key walk of it every time."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=_array_of(column)))  # type: ignore[no-any-return]
    return column.in_(bindparam(name, expanding=True))  # type: ignore[no-any-return]


def _array_of(column: Any) -> ARRAY[Any]:
    return ARRAY(BigInteger() if isinstance(column.type, BigInteger) else String())
