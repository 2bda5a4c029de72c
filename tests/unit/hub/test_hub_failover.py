"""The degradation composite, with two in-process buses standing in for Redis and
PostgreSQL: fallback while the primary is down, both during the grace period, and never
a duplicate for a subscriber."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from clarion.hub.memory import MemoryBus, MemoryTransport
from clarion.hub.metrics import hub_metrics
from clarion.hub.relay import RelayBroker


def node(name: str, primary: MemoryBus, fallback: MemoryBus, grace: float) -> RelayBroker:
    t1, t2 = MemoryTransport(primary), MemoryTransport(fallback)
    t1.name, t2.name = "redis", "postgres"
    return RelayBroker(
        [t1, t2],
        node_id=name,
        backend="redis",
        recovery_grace=grace,
        metrics=hub_metrics(CollectorRegistry()),
    )


async def test_switch_over_and_back_without_loss_or_duplicates() -> None:
    redis, pg = MemoryBus(), MemoryBus()
    a, b = node("a", redis, pg, grace=0.2), node("b", redis, pg, grace=0.2)
    await a.start()
    await b.start()
    sub = b.subscribe("ana")

    await a.publish("ana", b"1")
    assert a.active_transport == "redis"

    redis.down = True
    assert not a.healthy and "postgres" in (a.reason or "")
    await a.publish("ana", b"2")
    assert a.active_transport == "postgres"

    redis.down = False
    await a.publish("ana", b"3")  # grace: sent on both, delivered once
    await asyncio.sleep(0.25)
    await a.publish("ana", b"4")  # redis only again
    assert a.active_transport == "redis"
    assert sub.drain() == [b"1", b"2", b"3", b"4"]


async def test_failed_primary_send_is_retried_on_the_fallback() -> None:
    redis, pg = MemoryBus(), MemoryBus()
    a, b = node("a", redis, pg, grace=0), node("b", redis, pg, grace=0)
    await a.start()
    await b.start()
    sub = b.subscribe("ana")
    t = a.transports[0]
    assert isinstance(t, MemoryTransport)

    async def broken(data: bytes) -> None:
        from clarion.hub.relay import TransportError

        raise TransportError("boom")

    t.send = broken  # type: ignore[method-assign]  # healthy, yet the send fails
    await a.publish("ana", b"x")
    assert sub.drain() == [b"x"]


async def test_no_fallback_means_local_only_while_down() -> None:
    bus = MemoryBus()
    a, b = (RelayBroker([MemoryTransport(bus)], node_id=n, backend="redis") for n in "ab")
    await a.start()
    await b.start()
    local, remote = a.subscribe("ana"), b.subscribe("ana")
    bus.down = True
    await a.publish("ana", b"x")
    assert local.drain() == [b"x"] and remote.drain() == []
    assert a.active_transport == "local"
    assert a.reason is not None and "this node only" in a.reason
