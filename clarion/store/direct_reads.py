"""The driver underneath SQLAlchemy, for the hottest statements: a user's marks and a
page (the inbox), a group commit's planning reads, and the worker's claim
(``store/outbox.py``, ``claim_direct``).

Building, cache-keying and compiling a Core statement, then wrapping the driver's rows,
costs ~0.4 ms of CPU per statement, and an ``AsyncConnection`` around a pooled
connection another ~0.15 ms: more than the PostgreSQL round trip they describe (a
primary-key read is ~0.06 ms with asyncpg alone). So on PostgreSQL the hot reads:

* take a connection from the engine's own pool (same pool, same limits, same codecs:
  JSON columns decode as they do through SQLAlchemy) without the ``Connection`` wrapper;
* run SQL text compiled ONCE per statement shape from the Core statement (one definition
  of each query) with its parameters in a fixed order, as asyncpg prepared statements.

A pooled connection sits outside any transaction, so each statement is its own snapshot,
as on ``Database.connect()``. Driver errors become :class:`~clarion.errors.StorageError`
as they do in ``Database``, and a connection that failed is invalidated, not reused.
SQLite has no such overhead to save: :func:`driver` yields ``None`` there and callers
take the ordinary path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.sql import ClauseElement
from sqlalchemy.util.concurrency import greenlet_spawn

from clarion.errors import ClarionError, StorageError
from clarion.store.db import Database


@asynccontextmanager
async def driver(db: Database) -> AsyncIterator[Any | None]:
    """An asyncpg connection from ``db``'s pool for the length of the block, or ``None``
    when the fast path does not apply (not PostgreSQL through asyncpg)."""
    if db.engine.dialect.driver != "asyncpg":
        yield None
        return
    import asyncpg  # only PostgreSQL deployments need the driver

    dbapi_error = db.engine.dialect.loaded_dbapi.Error  # SQLAlchemy's wrapper of asyncpg's
    try:
        # Pool checkout may connect (asyncpg is async): SQLAlchemy runs it in a greenlet.
        fairy = await greenlet_spawn(db.engine.sync_engine.pool.connect)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, dbapi_error) as exc:
        db.availability.failed(exc)
        raise StorageError("the database is unavailable", outage=True) from exc
    try:
        yield fairy.driver_connection
        # As Database.begin/connect do: a statement answered ends an outage.
        if db.availability.down_since is not None:
            db.availability.succeeded()
    except ClarionError:
        raise
    except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError) as exc:
        fairy.invalidate(exc)
        db.availability.failed(exc)
        raise StorageError("the database is unavailable", outage=True) from exc
    except asyncpg.PostgresError as exc:
        raise StorageError("the database refused the operation") from exc
    finally:
        await greenlet_spawn(fairy.close)


def compile_sql(db: Database, stmt: ClauseElement) -> tuple[str, tuple[str, ...]]:
    """``stmt`` as the dialect's SQL text, and its bind parameter names in positional order."""
    compiled = stmt.compile(dialect=db.engine.dialect)
    # SQLCompiler (not the Compiled base the stubs name) keeps the positional order.
    order = tuple(getattr(compiled, "positiontup", None) or ())
    return compiled.string, order
