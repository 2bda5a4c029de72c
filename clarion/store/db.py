"""The database handle: one async engine, transactions, and the wrapping of driver errors.

Only ``store/`` speaks SQL. Everything above it gets Clarion errors: a unique-key
conflict becomes :class:`~clarion.errors.Conflict`, an unreachable database
:class:`~clarion.errors.StorageError`, never a raw driver exception.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from clarion.errors import ClarionError, Conflict, StorageError
from clarion.metrics import DEPENDENCY_ERRORS

log = logging.getLogger("clarion.store")


class Availability:
    """Whether a dependency answers, as the operations that use it find out: the first
    failure logs one line (the outage began, and why), the failures after it only count
    (``clarion_dependency_errors_total{dependency=...}``), and the first success after
    them logs one line again (how long it lasted, how many operations failed). During an
    outage every request fails alike, and a traceback per request said nothing new: a
    17-second database restart wrote 11 MB of them."""

    def __init__(self, dependency: str) -> None:
        self.dependency = dependency
        self.down_since: float | None = None
        self.failures = 0
        self._counter = DEPENDENCY_ERRORS.labels(dependency)

    @property
    def up(self) -> bool:
        return self.down_since is None

    def failed(self, exc: BaseException) -> None:
        self._counter.inc()
        self.failures += 1
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.error(
                "%s unavailable: %s: %s (further failures are counted in "
                "clarion_dependency_errors_total until it answers again)",
                self.dependency,
                type(exc).__name__,
                _first_line(exc),
            )

    def succeeded(self) -> None:
        if self.down_since is None:
            return
        lasted = time.monotonic() - self.down_since
        log.warning(
            "%s available again after %.1f s (%d failed operations)",
            self.dependency,
            lasted,
            self.failures,
        )
        self.down_since = None
        self.failures = 0


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0][:300] if text else ""


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers run while the single writer commits; NORMAL sync is safe with WAL
    # (a power cut may lose the last commits, never corrupt); busy_timeout makes a second
    # writer wait instead of failing at once.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()
    # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is deferred).
    dbapi_conn.isolation_level = None


def _sqlite_begin(conn: Any) -> None:
    # A writer takes SQLite's write lock at BEGIN: a deferred transaction that upgrades
    # from read to write fails at once with SQLITE_BUSY when another process writes.
    immediate = conn.get_execution_options().get("clarion_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """Owns the engine. Created in ``main()`` or a test from a URL, closed with ``dispose``."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 20) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 10}
        else:
            # No pre-ping: it costs a round trip per checkout; a dead connection raises,
            # SQLAlchemy invalidates it, and the request gets a clean StorageError.
            # Overflow connections are closed when returned, so a pool smaller than the
            # requests in flight churns connections (TCP, TLS probe, auth: milliseconds of
            # CPU each) under load: the steady pool is sized for a busy node.
            kwargs.update(pool_size=pool_size, max_overflow=pool_size // 2)
            # Statements are prepared once per connection and reused (asyncpg caches them).
            # PostgreSQL may then settle on a generic plan made while a table was small
            # and keep it: a recipients read planned on an empty users table stayed a
            # sequential scan, 3-4 s per 1,000-recipient send once it held 60,000 users.
            # Custom plans cost a little planning per execution and are always right.
            kwargs["connect_args"] = {"server_settings": {"plan_cache_mode": "force_custom_plan"}}
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        self.availability = Availability("database")
        # Writers are marked so that SQLite can take its write lock at BEGIN.
        self._writer = self.engine.execution_options(clarion_write=True)
        # Reads on PostgreSQL run in autocommit: each statement is its own snapshot, and
        # the BEGIN/ROLLBACK round trips around a one-query read (two of its three round
        # trips) disappear. SQLite keeps plain reads (its BEGIN is local and cheap).
        self._reader = (
            self.engine
            if url.startswith("sqlite")
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        # One writer at a time inside this process: SQLite has one write lock anyway, and
        # queueing here is cheaper than spinning on SQLITE_BUSY.
        self._write_lock: asyncio.Lock | None = None
        if self.is_sqlite:
            self._write_lock = asyncio.Lock()
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin)

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """One transaction; commits on success, rolls back on any error."""
        try:
            if self._write_lock is None:
                async with self._writer.begin() as conn:
                    yield conn
            else:
                async with self._write_lock, self._writer.begin() as conn:
                    yield conn
        except ClarionError:
            raise
        except IntegrityError as exc:
            raise Conflict("the change conflicts with existing data") from exc
        except (OperationalError, InterfaceError, OSError) as exc:
            self.availability.failed(exc)
            raise StorageError("the database is unavailable", outage=True) from exc
        except SQLAlchemyError as exc:
            raise StorageError("the database refused the operation") from exc
        if self.availability.down_since is not None:
            self.availability.succeeded()

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads. On PostgreSQL each statement sees its own snapshot:
        a read that needs one consistent view of several statements uses ``begin()``."""
        try:
            async with self._reader.connect() as conn:
                yield conn
        except ClarionError:
            raise
        except (OperationalError, InterfaceError, OSError) as exc:
            self.availability.failed(exc)
            raise StorageError("the database is unavailable", outage=True) from exc
        except SQLAlchemyError as exc:
            raise StorageError("the database refused the operation") from exc
        if self.availability.down_since is not None:
            self.availability.succeeded()

    async def ping(self, within: float = 5.0) -> bool:
        """Does the database answer, within ``within`` seconds (a readiness probe must not
        hang on a database host that drops packets)?"""
        try:
            async with asyncio.timeout(within):
                async with self.connect() as conn:
                    await conn.execute(text("SELECT 1"))
            return True
        except (StorageError, TimeoutError):
            return False

    async def dispose(self) -> None:
        await self.engine.dispose()
