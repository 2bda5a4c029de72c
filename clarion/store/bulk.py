"""Many rows into one table inside the caller's transaction, as cheaply as the database
allows: the write side of sends, group commits and digest pages.

Through SQLAlchemy an ``INSERT`` of N rows costs Python work per row and per column
(parameter processing, one ``json.dumps`` per JSON value, a statement text per N):
~130 µs per notification of a 1,000-recipient send, most of that send's CPU. On
PostgreSQL these rows go through the driver instead, as ONE statement whatever N is::

    INSERT INTO t (a, b, ...) SELECT * FROM unnest($1::type_a[], $2::type_b[], ...)

one array parameter per column, encoded by asyncpg in C. The text depends only on the
table and its columns, so it is prepared once per connection and every later insert is a
single round trip (round trips, not bytes, are what costs on these machines: ``COPY``
needs three, and a sequence fetch for ids one more). Notification ids come back from
``RETURNING``; ``unnest`` feeds rows in array order and ``nextval`` runs row by row, so
the ids ascend in the order of the rows given.

JSON values are encoded once per distinct object: the rows of one send share their
``channels``, ``data`` and usually ``content``.

SQLite keeps SQLAlchemy's executemany: it runs in-process, with no round trips to save.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import JSON, Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection


async def driver_in_transaction(conn: AsyncConnection) -> Any | None:
    """The asyncpg connection under ``conn`` inside ``conn``'s transaction, or ``None``
    (not PostgreSQL, or ``conn`` is not in a transaction) and the caller goes through
    SQLAlchemy.

    SQLAlchemy sends BEGIN lazily, with a transaction's first statement. When a bulk
    write is that first statement, the BEGIN is sent here, by the same adapter method
    SQLAlchemy would call (its commit and rollback then finish it as usual); without that
    method (another SQLAlchemy version) the write goes through SQLAlchemy."""
    if conn.dialect.driver != "asyncpg" or not conn.in_transaction():
        return None
    fairy: Any = await conn.get_raw_connection()
    raw: Any = fairy.driver_connection
    if raw is None:
        return None
    if not raw.is_in_transaction():
        adapter = fairy.dbapi_connection
        start = getattr(adapter, "_start_transaction", None)
        mutex = getattr(adapter, "_execute_mutex", None)
        if start is None or mutex is None:
            return None
        async with mutex:
            await start()
    return raw if raw.is_in_transaction() else None


def _columns(table: Table, row: Mapping[str, Any]) -> list[str]:
    """The columns to load: the row's, plus those with a constant Python-side default
    (which SQLAlchemy would have filled in and the database does not know about)."""
    names = [c.name for c in table.columns if c.name in row]
    for c in table.columns:
        if c.name in row or c.default is None:
            continue
        if not c.default.is_scalar:
            raise ValueError(f"{table.name}.{c.name} needs a value (its default is not constant)")
        names.append(c.name)
    return names


def _records(
    table: Table,
    names: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
) -> list[tuple[Any, ...]]:
    """One tuple per row in ``names`` order."""
    defaults = {
        c.name: getattr(c.default, "arg", None)
        for c in table.columns
        if c.name in names and c.default is not None and c.default.is_scalar
    }
    json_cols = {c.name for c in table.columns if isinstance(c.type, JSON)}
    encoded: dict[int, str] = {}  # id(value) -> JSON text, for values shared by many rows

    def as_json(value: Any) -> str | None:
        if value is None:
            return None
        text = encoded.get(id(value))
        if text is None:
            text = encoded[id(value)] = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
        return text

    plan = [(name, name in json_cols, name in defaults) for name in names]
    out = []
    for row in rows:
        record: list[Any] = []
        for name, is_json, has_default in plan:
            value = row[name] if not has_default or name in row else defaults[name]
            record.append(as_json(value) if is_json else value)
        out.append(tuple(record))
    return out


_SQL: dict[tuple[str, tuple[str, ...], bool, str], str] = {}


def _unnest_sql(table: Table, names: Sequence[str], returning: bool, on_conflict: str = "") -> str:
    key = (table.name, tuple(names), returning, on_conflict)
    sql = _SQL.get(key)
    if sql is None:
        pg = postgresql.dialect()  # type: ignore[no-untyped-call]
        casts = ", ".join(
            f"${i}::{table.c[name].type.compile(dialect=pg)}[]" for i, name in enumerate(names, 1)
        )
        sql = f"INSERT INTO {table.name} ({', '.join(names)}) SELECT * FROM unnest({casts})"
        sql += on_conflict
        if returning:
            sql += " RETURNING id"
        _SQL[key] = sql
    return sql


# id(statement) -> (statement, its ON CONFLICT clause); holding the statement keeps its id
# from being reused. Callers pass statements they build once.
_CONFLICT: dict[int, tuple[Any, str]] = {}


def _on_conflict(statement: Any) -> str:
    """The ``ON CONFLICT ...`` clause of a PostgreSQL ``INSERT`` construct as SQL text, so
    that the unnest insert does exactly what the construct says on conflict."""
    hit = _CONFLICT.get(id(statement))
    if hit is None:
        if len(_CONFLICT) > 256:  # a caller building statements per call: do not hoard them
            _CONFLICT.clear()
        text = str(statement.compile(dialect=postgresql.dialect()))  # type: ignore[no-untyped-call]
        at = text.find(" ON CONFLICT ")
        hit = _CONFLICT[id(statement)] = (statement, "" if at < 0 else text[at:])
    return hit[1]


def _arrays(
    table: Table, names: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> list[list[Any]]:
    """The rows as one list per column (``unnest``'s parameters)."""
    return [list(col) for col in zip(*_records(table, names, rows), strict=True)]


async def insert(
    conn: AsyncConnection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    statement: Any | None = None,
) -> None:
    """Insert ``rows`` (all with the same keys) into ``table``. ``statement``: the dialect's
    ``INSERT`` construct when conflicts need handling (``ON CONFLICT DO NOTHING`` or
    ``DO UPDATE``); its clause is applied to the unnest insert on PostgreSQL."""
    if not rows:
        return
    driver = await driver_in_transaction(conn)
    if driver is None:
        await conn.execute(table.insert() if statement is None else statement, list(rows))
        return
    names = _columns(table, rows[0])
    conflict = "" if statement is None else _on_conflict(statement)
    await driver.execute(_unnest_sql(table, names, False, conflict), *_arrays(table, names, rows))


async def insert_with_ids(
    conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]]
) -> list[int]:
    """Insert ``rows`` into ``table`` (an integer ``id`` from a sequence) and return their
    ids in the order given."""
    if not rows:
        return []
    driver = await driver_in_transaction(conn)
    if driver is None:
        if len(rows) == 1:
            result = await conn.execute(table.insert().returning(table.c.id), rows[0])
            return [result.scalar_one()]
        result = await conn.execute(
            table.insert().returning(table.c.id, sort_by_parameter_order=True), list(rows)
        )
        return [r[0] for r in result]
    names = _columns(table, rows[0])
    got = await driver.fetch(_unnest_sql(table, names, True), *_arrays(table, names, rows))
    return sorted(r[0] for r in got)
