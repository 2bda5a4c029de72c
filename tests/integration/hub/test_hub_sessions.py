"""Session registry on real Redis: counts across nodes, dead nodes expire, clean close."""

from __future__ import annotations

import asyncio

import pytest

from clarion.hub.redis_link import RedisLink
from clarion.hub.sessions import SessionRegistry

pytestmark = pytest.mark.redis


async def test_counts_across_nodes(shared_link: RedisLink) -> None:
    n1 = SessionRegistry(shared_link, "node-1", ttl=5, heartbeat=1)
    n2 = SessionRegistry(shared_link, "node-2", ttl=5, heartbeat=1)
    await n1.start()
    await n2.start()
    try:
        await n1.connected("ana")
        await n1.connected("ana")
        await n2.connected("ana")
        await n2.connected("bob")
        assert await n1.count_for("ana") == 3
        assert await n2.count_for("bob") == 1
        assert await n1.any_connected(["ana", "bob", "carl"]) == {"ana", "bob"}
        assert await n1.per_node() == {"node-1": 2, "node-2": 2}
        await n2.disconnected("bob")
        assert await n1.any_connected(["bob"]) == set()
        assert n1.local_count("ana") == 2
    finally:
        await n1.close()
        await n2.close()
    observer = SessionRegistry(shared_link, "node-3")
    assert await observer.per_node() == {"node-3": 0}  # closed nodes removed themselves
    assert await observer.count_for("ana") == 0


async def test_a_dead_nodes_entries_expire(shared_link: RedisLink) -> None:
    dead = SessionRegistry(shared_link, "dead", ttl=1, heartbeat=10)
    await dead.start()
    await dead.connected("ana")
    # Simulate a crash: stop the heartbeat without the clean close.
    assert dead._task is not None
    dead._task.cancel()
    alive = SessionRegistry(shared_link, "alive", ttl=1, heartbeat=10)
    assert await alive.count_for("ana") == 1
    async with asyncio.timeout(5):
        while await alive.count_for("ana"):  # noqa: ASYNC110 - polling Redis
            await asyncio.sleep(0.2)
    assert "dead" not in await alive.per_node()


async def test_without_redis_this_node_only() -> None:
    reg = SessionRegistry(None, "solo")
    await reg.start()
    await reg.connected("ana")
    assert await reg.count_for("ana") == 1
    assert await reg.any_connected(["ana", "bob"]) == {"ana"}
    assert await reg.per_node() == {"solo": 1}
    await reg.disconnected("ana")
    await reg.disconnected("ana")  # extra disconnects never go negative
    assert await reg.count_for("ana") == 0
    await reg.close()


async def test_connected_elsewhere_names_other_nodes_users_only(shared_link: RedisLink) -> None:
    """What a publisher sends across nodes: users connected on ANOTHER node; ``None``
    (send everything) right after Redis came back, before every node rewrote its hash."""
    here = SessionRegistry(shared_link, "here", ttl=5, heartbeat=1)
    there = SessionRegistry(shared_link, "there", ttl=5, heartbeat=1)
    await here.start()
    await there.start()
    try:
        await here.connected("ana")
        await there.connected("bob")
        assert await here.connected_elsewhere(["ana", "bob", "carl"]) == {"bob"}
        assert await there.connected_elsewhere(["ana", "bob"]) == {"ana"}
        assert await here.connected_elsewhere([]) == set()
        await here._on_link_change(False)  # Redis lost, then back (maybe empty)
        await here._on_link_change(True)
        assert await here.connected_elsewhere(["bob"]) is None
    finally:
        await here.close()
        await there.close()


async def test_connected_elsewhere_is_unknown_without_redis() -> None:
    reg = SessionRegistry(None, "solo")
    await reg.connected("ana")
    assert await reg.connected_elsewhere(["ana"]) is None
