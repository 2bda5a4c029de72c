"""Choose the broker for a deployment.

- Redis configured: Redis pub/sub, with PostgreSQL NOTIFY as the fallback transport when
  the database is PostgreSQL (graceful degradation), else local-only while Redis is down.
- No Redis, PostgreSQL database: LISTEN/NOTIFY.
- Neither (SQLite, one process): in-memory.
"""

from __future__ import annotations

from clarion.config import Settings
from clarion.hub.broker import DEFAULT_QUEUE_SIZE, Broker
from clarion.hub.memory import MemoryBroker
from clarion.hub.metrics import HubMetrics
from clarion.hub.postgres import DEFAULT_CHANNEL, PostgresBroker, PostgresTransport, is_postgres_url
from clarion.hub.redis import RedisBroker
from clarion.hub.redis_link import RedisLink, make_node_id


def build_broker(
    settings: Settings,
    redis: RedisLink | None,
    *,
    node_id: str | None = None,
    pg_channel: str = DEFAULT_CHANNEL,
    queue_size: int = DEFAULT_QUEUE_SIZE,
    recovery_grace: float = 5.0,
    metrics: HubMetrics | None = None,
) -> Broker:
    """The broker for ``settings``; call ``await broker.start()`` before use."""
    node = node_id or make_node_id(settings.port)
    on_postgres = is_postgres_url(settings.database_url)
    if redis is not None:
        fallback = (
            PostgresTransport(settings.database_url, channel=pg_channel) if on_postgres else None
        )
        return RedisBroker(
            redis,
            node_id=node,
            fallback=fallback,
            recovery_grace=recovery_grace,
            queue_size=queue_size,
            metrics=metrics,
        )
    if on_postgres:
        return PostgresBroker(
            settings.database_url,
            node_id=node,
            channel=pg_channel,
            queue_size=queue_size,
            metrics=metrics,
        )
    return MemoryBroker(node_id=node, queue_size=queue_size, metrics=metrics)
