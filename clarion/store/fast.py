"""The driver underneath SQLAlchemy, for the two hottest reads (a user's marks, a page).

Building, caching-key and compiling a Core statement, then wrapping the driver's rows,
costs ~0.5 ms of CPU per statement: more than the PostgreSQL round trip it describes
(a primary-key read is ~0.06 ms with asyncpg alone). The hot reads therefore compile
their statement ONCE (per shape) to the dialect's SQL text with named parameters in a
fixed order, and hand that text to asyncpg, whose own prepared-statement cache then does
the rest. The statements stay written in Core, so there is one definition of each query.

Only on a PostgreSQL connection in autocommit (``Database.connect()``): there the driver
runs no transaction SQLAlchemy could be tracking. Inside ``Database.begin()`` SQLAlchemy
opens its transaction lazily, so a raw statement issued first would run outside it;
those callers, and SQLite, keep the ordinary path.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ClauseElement


async def autocommit_driver(conn: AsyncConnection) -> Any | None:
    """The asyncpg connection under ``conn``, or ``None`` when the fast path does not apply."""
    if conn.dialect.driver != "asyncpg":
        return None
    options = conn.sync_connection.get_execution_options() if conn.sync_connection else {}
    if options.get("isolation_level") != "AUTOCOMMIT":
        return None
    raw = await conn.get_raw_connection()
    return raw.driver_connection


def compile_sql(conn: AsyncConnection, stmt: ClauseElement) -> tuple[str, tuple[str, ...]]:
    """``stmt`` as the dialect's SQL text, and its bind parameter names in positional order."""
    compiled = stmt.compile(dialect=conn.dialect)
    # SQLCompiler (not the Compiled base the stubs name) keeps the positional order.
    order = tuple(getattr(compiled, "positiontup", None) or ())
    return compiled.string, order
