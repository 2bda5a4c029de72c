"""Lists iterate across pages by cursor, sync and async, fetching pages as the loop goes."""

from __future__ import annotations

import pytest

from clarion_client import AsyncClient, Client
from tests.e2e.conftest import Server
from tests.sdk.conftest import QUICK

pytestmark = pytest.mark.e2e


def test_iterating_a_list_walks_every_page(client: Client) -> None:
    sent = client.notifications.send(user_ids=["pam"] * 1, type="t", title="n0").ids
    for i in range(1, 23):
        sent += client.notifications.send(user_id="pam", type="t", title=f"n{i}").ids
    pager = client.notifications.list(user_id="pam", limit=10)
    assert [n.id for n in pager] == sorted(sent, reverse=True)  # newest first, all 23
    pages = list(pager.pages())
    assert [len(p.items) for p in pages] == [10, 10, 3]
    assert pages[-1].next_cursor is None
    first = pager.first_page()
    assert len(first.items) == 10 and first.next_cursor
    rest = client.notifications.list(user_id="pam", limit=10, cursor=first.next_cursor)
    assert [n.id for n in rest] == sorted(sent, reverse=True)[10:]
    assert len(client.notifications.list(user_id="pam", limit=5).to_list(limit=7)) == 7


async def test_async_iteration_and_other_lists(server: Server) -> None:
    async with AsyncClient(server.url, server.key, retry=QUICK) as clarion:
        for i in range(5):
            await clarion.templates.create(f"page-{i}", {"en": {"in_app.title": f"T{i}"}})
        keys = [t.key async for t in clarion.templates.list(limit=2)]
        assert [k for k in keys if k.startswith("page-")] == [f"page-{i}" for i in range(5)]
        for i in range(3):
            await clarion.notifications.send(user_id="quinn", type="t", title=f"q{i}")
        titles = [n.title async for n in clarion.notifications.list(user_id="quinn", limit=1)]
        assert titles == ["q2", "q1", "q0"]
