"""What the commands share: settings from the environment, logging, running a coroutine
with the services, and reporting errors."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import typer

from clarion.config import Settings


def load_settings() -> Settings:
    return Settings()


#: Libraries whose DEBUG (SQLAlchemy: INFO) lines print SQL parameters, webhook secrets and
#: contact data among them: never below WARNING, whatever CLARION_LOG_LEVEL says.
_QUIET_LOGGERS = ("aiosqlite", "sqlalchemy", "asyncpg")


def configure_logging(settings: Settings, fmt: str) -> None:
    level = settings.log_level.upper()
    logging.basicConfig(level=level, format=fmt)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def err(message: str) -> None:
    typer.echo(message, err=True)


def run(coro: Any) -> Any:
    from clarion.errors import ClarionError

    try:
        return asyncio.run(coro)
    except ClarionError as exc:
        err(f"error: {exc.code}: {exc.message}")
        raise typer.Exit(2) from exc


async def with_services(settings: Settings, fn: Any) -> Any:
    from clarion.services.container import Services
    from clarion.store.migrate import upgrade

    await upgrade(settings.database_url)
    services = Services(settings)
    try:
        return await fn(services)
    finally:
        await services.close()
