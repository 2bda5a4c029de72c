"""The Hub bundle with Redis configured (shared Redis, unique prefix)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from clarion.config import Settings
from clarion.hub.hub import Hub
from clarion.hub.redis import RedisBroker
from tests.integration.hub.conftest import REDIS_URL, service_missing

pytestmark = pytest.mark.redis


async def test_hub_with_redis(tag: str) -> None:
    settings = Settings(database_url="sqlite+aiosqlite:///x.db", redis_url=REDIS_URL)
    hub = Hub.build(settings, redis_prefix=f"clarion-test:{tag}", registry=CollectorRegistry())
    await hub.start()
    try:
        assert hub.redis is not None
        if not hub.redis.healthy:
            service_missing(f"Redis at {REDIS_URL} unreachable: {hub.redis.reason}")
        assert isinstance(hub.broker, RedisBroker)
        assert await hub.broker.redis_transport.wait_listening(5)
        await hub.sessions.connected("ana")
        assert await hub.sessions.per_node() == {hub.node_id: 1}
        status = hub.status()
        assert status["broker"]["healthy"] and status["redis"]["healthy"]
        assert status["broker"]["active_transport"] == "redis"
    finally:
        await hub.close()
