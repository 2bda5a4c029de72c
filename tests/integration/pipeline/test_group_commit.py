"""Group commit: concurrent sends written together, each with its own outcome (both
databases, real services)."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from clarion.domain.send_command import SendCommand
from clarion.errors import NotFound
from clarion.services.container import Services
from clarion.services.idempotency import IdempotencyRequest
from clarion.store.schema import events, notifications, users


def _groups() -> tuple[float, float]:
    count = REGISTRY.get_sample_value("clarion_send_group_size_count") or 0.0
    total = REGISTRY.get_sample_value("clarion_send_group_size_sum") or 0.0
    return count, total


async def test_concurrent_sends_share_transactions_and_keep_their_own_ids(
    services: Services,
) -> None:
    groups0, sends0 = _groups()
    cmds = [SendCommand(user_ids=(f"u{i % 7}",), type="t", title=f"n{i}") for i in range(40)]
    results = await asyncio.gather(*(services.sending.send(c) for c in cmds))
    groups, sends = _groups()
    assert sends - sends0 == 40
    assert groups - groups0 < 40  # some sends were written together
    ids = [r.body["ids"][0] for r in results]
    assert len(set(ids)) == 40
    async with services.db.connect() as conn:
        stored = {
            r.id: (r.user_id, r.title)
            for r in await conn.execute(select(notifications).where(notifications.c.id.in_(ids)))
        }
        counts = dict((await conn.execute(select(users.c.user_id, users.c.unread_count))).all())
        accepted = (
            await conn.execute(select(func.count()).where(events.c.type == "accepted"))
        ).scalar_one()
    # Each send's id is its own row: the recipient and title it was sent with.
    for cmd, nid in zip(cmds, ids, strict=True):
        assert stored[nid] == (cmd.user_ids[0], cmd.title)
    # Counts summed per user across the sends of a group.
    assert counts == {f"u{k}": sum(1 for i in range(40) if i % 7 == k) for k in range(7)}
    assert accepted == 40


async def test_a_failing_send_fails_alone(services: Services) -> None:
    good = [SendCommand(user_ids=(f"u{i}",), type="t", title="ok") for i in range(10)]
    bad = SendCommand(user_ids=("x",), type="t", title="", template_key="no-such-template")
    results = await asyncio.gather(
        *(services.sending.send(c) for c in [*good[:5], bad, *good[5:]]),
        return_exceptions=True,
    )
    assert isinstance(results[5], NotFound)
    ok = [r for i, r in enumerate(results) if i != 5]
    assert all(not isinstance(r, BaseException) and r.status_code == 202 for r in ok)
    async with services.db.connect() as conn:
        rows = (await conn.execute(select(notifications.c.user_id))).scalars().all()
    assert sorted(rows) == sorted(f"u{i}" for i in range(10))


@pytest.mark.parametrize("n", [12])
async def test_idempotency_keys_complete_per_send_inside_a_group(
    services: Services, n: int
) -> None:
    cmds = [SendCommand(user_ids=(f"u{i}",), type="t", title=f"n{i}") for i in range(n)]

    def key(i: int) -> IdempotencyRequest:
        body = {"user_id": f"u{i}", "title": f"n{i}"}
        return IdempotencyRequest.build("k1", f"key-{i}", body)

    first = await asyncio.gather(*(services.sending.send(c, key(i)) for i, c in enumerate(cmds)))
    again = await asyncio.gather(*(services.sending.send(c, key(i)) for i, c in enumerate(cmds)))
    assert all(not r.replayed for r in first) and all(r.replayed for r in again)
    assert [r.body for r in again] == [r.body for r in first]
    async with services.db.connect() as conn:
        total = (await conn.execute(select(func.count()).select_from(notifications))).scalar_one()
    assert total == n
