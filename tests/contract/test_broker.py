"""One contract, every broker backend (memory, redis, postgres): what the WebSocket layer
may rely on, whichever backend a deployment picked."""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING

import pytest

from clarion.hub.broker import CloseReason, Subscription, SubscriptionClosed

if TYPE_CHECKING:
    from tests.contract.conftest import Cluster

WITHIN = 5.0  # every wait is bounded


async def recv(sub: Subscription, n: int) -> list[bytes]:
    async with asyncio.timeout(WITHIN):
        return [await sub.get() for _ in range(n)]


async def settle() -> None:
    """Long enough for a stray duplicate or misrouted message to show up."""
    await asyncio.sleep(0.2)


async def test_publish_reaches_every_subscriber_of_the_user_on_every_node(cluster: Cluster) -> None:
    a, b = await cluster.node(), await cluster.node()
    a1, a2, b1 = a.subscribe("ana"), a.subscribe("ana"), b.subscribe("ana")
    other_a, other_b = a.subscribe("bob"), b.subscribe("bob")

    await a.publish("ana", b'{"n":1}')
    await b.publish("ana", b'{"n":2}')

    for sub in (a1, a2, b1):
        assert sorted(await recv(sub, 2)) == [b'{"n":1}', b'{"n":2}']
    await settle()
    for sub in (a1, a2, b1, other_a, other_b):
        assert sub.qsize() == 0, "exactly once, and nobody else"


async def test_order_is_preserved_per_publisher(cluster: Cluster) -> None:
    a, b = await cluster.node(), await cluster.node()
    local, remote = a.subscribe("ana"), b.subscribe("ana")
    sent = [f"m{i}".encode() for i in range(200)]
    for m in sent:
        await a.publish("ana", m)
    assert await recv(local, 200) == sent
    assert await recv(remote, 200) == sent


async def test_publish_many_delivers_one_frame_to_each_listed_user_once(cluster: Cluster) -> None:
    a, b = await cluster.node(), await cluster.node()
    subs = {u: (a.subscribe(u), b.subscribe(u)) for u in ("u1", "u2", "u3", "u4")}

    await a.publish_many(["u1", "u2", "u3", "u2"], b"hello")

    for u in ("u1", "u2", "u3"):
        for sub in subs[u]:
            assert await recv(sub, 1) == [b"hello"]
    await settle()
    for pair in subs.values():
        for sub in pair:
            assert sub.qsize() == 0
    await a.publish_many([], b"nobody")  # no-op, no error


async def test_unsubscribe_stops_delivery(cluster: Cluster) -> None:
    a, b = await cluster.node(), await cluster.node()
    gone, stays = b.subscribe("ana"), b.subscribe("ana")
    b.unsubscribe(gone)
    assert gone.closed and gone.close_reason is CloseReason.UNSUBSCRIBED

    await a.publish("ana", b"x")
    assert await recv(stays, 1) == [b"x"]
    with pytest.raises(SubscriptionClosed):
        await gone.get()
    b.unsubscribe(stays)
    assert not b.has_local_subscribers("ana")


async def test_slow_subscriber_overflows_without_hurting_a_fast_one(cluster: Cluster) -> None:
    a, b = await cluster.node(), await cluster.node()
    slow = b.subscribe("ana", queue_size=10)  # never reads
    # Cross-node transports deliver in bursts (a NOTIFY batch arrives at once), so the
    # fast reader gets room for a burst; the slow one still overflows at 10.
    fast = b.subscribe("ana", queue_size=100)
    got: list[bytes] = []

    async def read_fast() -> None:
        async for m in fast:
            got.append(m)
            if len(got) == 50:
                return

    reader = asyncio.create_task(read_fast())
    for i in range(50):
        await a.publish("ana", str(i).encode())
        await asyncio.sleep(0)  # a fast consumer keeps up with a paced publisher
    async with asyncio.timeout(WITHIN):
        await reader
    assert got == [str(i).encode() for i in range(50)]
    assert slow.overflowed and slow.close_reason is CloseReason.SLOW_CONSUMER
    with pytest.raises(SubscriptionClosed) as info:
        await slow.get()
    assert info.value.reason is CloseReason.SLOW_CONSUMER
    assert not fast.closed


async def test_large_messages_cross_nodes(cluster: Cluster) -> None:
    a, b = await cluster.node(), await cluster.node()
    sub = b.subscribe("ana")
    big = os.urandom(50_000)  # > 8 KB NOTIFY limit, and not valid UTF-8
    small = b"after"
    await a.publish("ana", big)
    await a.publish("ana", small)
    assert await recv(sub, 2) == [big, small]


async def test_close_ends_every_subscription(cluster: Cluster) -> None:
    a = await cluster.node()
    sub = a.subscribe("ana")
    waiter = asyncio.create_task(sub.get())
    await asyncio.sleep(0)
    await a.close()
    with pytest.raises(SubscriptionClosed):
        async with asyncio.timeout(WITHIN):
            await waiter
    assert sub.close_reason is CloseReason.BROKER_CLOSED


async def test_health_is_reported(cluster: Cluster) -> None:
    a = await cluster.node()
    assert a.healthy
    assert a.reason is None


async def test_publish_batch_gives_each_user_only_their_own_message(cluster: Cluster) -> None:
    """One call, a different message per user: each subscriber of a user gets that user's
    message once, on every node; nobody gets another user's; users with no subscriber
    anywhere are skipped."""
    a, b = await cluster.node(), await cluster.node()
    subs = {u: (a.subscribe(u), a.subscribe(u), b.subscribe(u)) for u in ("u1", "u2", "u3")}
    bystander_a, bystander_b = a.subscribe("u4"), b.subscribe("u4")
    batch = [(u, f'{{"for":"{u}"}}'.encode()) for u in ("u1", "u2", "nobody", "u3")]

    await a.publish_batch(batch)

    for u, pair in subs.items():
        for sub in pair:
            assert await recv(sub, 1) == [f'{{"for":"{u}"}}'.encode()]
    await settle()
    for sub in (*[s for pair in subs.values() for s in pair], bystander_a, bystander_b):
        assert sub.qsize() == 0, "exactly once, and nobody else's"
    await a.publish_batch([])  # no-op, no error


async def test_publish_batch_crosses_only_for_users_connected_elsewhere(cluster: Cluster) -> None:
    """``cross_node`` (from the session registry) limits what travels: local subscribers
    always get theirs, other nodes only the listed users' messages."""
    a, b = await cluster.node(), await cluster.node()
    local_ana, remote_ana, remote_bob = a.subscribe("ana"), b.subscribe("ana"), b.subscribe("bob")

    await a.publish_batch([("ana", b"a1"), ("bob", b"b1")], cross_node=set())
    assert await recv(local_ana, 1) == [b"a1"]
    await a.publish_batch([("ana", b"a2"), ("bob", b"b2")], cross_node={"bob"})
    assert await recv(local_ana, 1) == [b"a2"]
    assert await recv(remote_bob, 1) == [b"b2"]
    await settle()
    assert remote_ana.qsize() == 0, "ana was not listed as connected elsewhere"
    assert remote_bob.qsize() == 0 and local_ana.qsize() == 0


async def test_publish_batch_keeps_order_with_single_publishes(cluster: Cluster) -> None:
    a, b = await cluster.node(), await cluster.node()
    local, remote = a.subscribe("ana"), b.subscribe("ana")
    await a.publish("ana", b"1")
    await a.publish_batch([("bob", b"x"), ("ana", b"2")])
    await a.publish("ana", b"3")
    assert await recv(local, 3) == [b"1", b"2", b"3"]
    assert await recv(remote, 3) == [b"1", b"2", b"3"]
