"""Subscription mailbox and local fan-out rules, no server needed."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from clarion.hub.broker import CloseReason, Subscription, SubscriptionClosed
from clarion.hub.memory import MemoryBroker
from clarion.hub.metrics import hub_metrics


async def test_overflow_closes_with_reason_instead_of_dropping() -> None:
    seen: list[Subscription] = []
    sub = Subscription("ana", maxsize=2, on_overflow=seen.append)
    assert sub.offer(b"1") and sub.offer(b"2")
    assert not sub.offer(b"3")
    assert sub.overflowed and sub.close_reason is CloseReason.SLOW_CONSUMER
    assert seen == [sub]
    assert not sub.offer(b"4")  # stays closed, reason unchanged
    with pytest.raises(SubscriptionClosed):
        await sub.get()


async def test_get_wakes_on_message_and_on_close() -> None:
    sub = Subscription("ana")
    getter = asyncio.create_task(sub.get())
    await asyncio.sleep(0)
    sub.offer(b"x")
    assert await asyncio.wait_for(getter, 1) == b"x"
    getter = asyncio.create_task(sub.get())
    await asyncio.sleep(0)
    sub.close(CloseReason.UNSUBSCRIBED)
    with pytest.raises(SubscriptionClosed):
        await asyncio.wait_for(getter, 1)


async def test_drain_and_iteration() -> None:
    sub = Subscription("ana")
    for m in (b"a", b"b", b"c"):
        sub.offer(m)
    assert sub.drain() == [b"a", b"b", b"c"]
    sub.offer(b"d")
    sub_iter = aiter(sub)
    assert await anext(sub_iter) == b"d"
    sub.close(CloseReason.BROKER_CLOSED)
    assert [m async for m in sub] == []


def test_maxsize_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Subscription("ana", maxsize=0)


async def test_big_fan_out_yields_to_the_loop_and_counts_metrics() -> None:
    metrics = hub_metrics(CollectorRegistry())
    broker = MemoryBroker(yield_every=100, metrics=metrics)
    subs = [broker.subscribe(f"u{i}") for i in range(1000)]
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    t = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    await broker.publish_many([s.user_id for s in subs], b"hi")
    t.cancel()
    assert ticks >= 5, "the loop ran other tasks during the fan-out"
    assert all(s.qsize() == 1 for s in subs)
    assert metrics.messages_pushed._value.get() == 1000


async def test_overflowed_subscription_is_forgotten_and_counted() -> None:
    metrics = hub_metrics(CollectorRegistry())
    broker = MemoryBroker(metrics=metrics, queue_size=1)
    sub = broker.subscribe("ana")
    await broker.publish("ana", b"1")
    await broker.publish("ana", b"2")
    assert sub.overflowed and not broker.has_local_subscribers("ana")
    assert metrics.slow_consumer_disconnects._value.get() == 1
