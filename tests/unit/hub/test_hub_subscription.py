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


async def test_listener_hears_messages_closes_and_wakes() -> None:
    sub = Subscription("ana", maxsize=2)
    heard: list[int] = []
    sub.listen(lambda: heard.append(sub.qsize()))
    sub.offer(b"1")
    sub.wake()
    sub.offer(b"2")
    sub.offer(b"3")  # overflows: closes, which the listener hears too
    assert heard == [1, 1, 2, 0]
    sub.listen(None)
    sub.wake()
    assert heard == [1, 1, 2, 0]


async def test_batch_delivery_routes_each_message_to_its_user_only() -> None:
    broker = MemoryBroker(metrics=hub_metrics(CollectorRegistry()))
    ana1, ana2, bob, carl = (broker.subscribe(u) for u in ("ana", "ana", "bob", "carl"))
    delivered = await broker.deliver_local_batch(
        [("ana", b"for ana"), ("bob", b"for bob"), ("dora", b"for dora")]
    )
    assert delivered == 3
    assert ana1.drain() == ana2.drain() == [b"for ana"]
    assert bob.drain() == [b"for bob"]
    assert carl.qsize() == 0


async def test_concurrent_big_fan_outs_take_turns_between_yields() -> None:
    """Every delivery wakes a socket writer in the next loop iteration: two big fan-outs
    interleaving their chunks would double what an API request waits behind."""
    broker = MemoryBroker(yield_every=100, metrics=hub_metrics(CollectorRegistry()))
    subs = [broker.subscribe(f"u{i}") for i in range(2000)]
    per_tick: list[int] = []

    def queued() -> int:
        return sum(s.qsize() for s in subs)

    async def ticker() -> None:
        last = 0
        while True:
            await asyncio.sleep(0)
            now = queued()
            per_tick.append(now - last)
            last = now

    t = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    first = [(f"u{i}", b"a") for i in range(1000)]
    second = [(f"u{i}", b"b") for i in range(1000, 2000)]
    await asyncio.gather(broker.deliver_local_batch(first), broker.deliver_local_batch(second))
    t.cancel()
    assert queued() == 2000
    # The second fan-out's first chunk runs before it waits for its turn: at most two
    # chunks land in one iteration, once; never ten fan-outs' worth.
    assert max(per_tick) <= 200, per_tick
    assert sum(1 for n in per_tick if n > 100) <= 1, per_tick
    assert len([n for n in per_tick if n]) >= 15, "yielded between chunks"
