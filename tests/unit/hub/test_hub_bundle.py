"""The Hub bundle on the embedded default: SQLite, no Redis."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from clarion.config import Settings
from clarion.hub.hub import Hub
from clarion.hub.memory import MemoryBroker


async def test_embedded_hub_lifecycle() -> None:
    hub = Hub.build(Settings(database_url="sqlite+aiosqlite:///x.db"), registry=CollectorRegistry())
    assert hub.redis is None and isinstance(hub.broker, MemoryBroker)
    await hub.start()
    try:
        sub = hub.broker.subscribe("ana")
        await hub.sessions.connected("ana")
        await hub.broker.publish("ana", b"hi")
        assert sub.drain() == [b"hi"]
        assert (await hub.limiter.hit("api", "k", "1/minute")).allowed
        status = hub.status()
        assert status["broker"]["healthy"] and status["redis"] is None
        assert status["broker"]["active_transport"] == "local"
    finally:
        await hub.close()
    assert sub.closed
