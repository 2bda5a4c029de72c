"""services/recent.py: a value polled by many callers is computed at most once every
``fresh_for`` seconds, answered up to ``stale_for`` old while the next is computed in the
background, and waited for when older than that."""

from __future__ import annotations

import asyncio
import logging

import pytest

from clarion.services.recent import Recent


class Counter:
    """A computation that counts its runs and can be made to wait or fail."""

    def __init__(self) -> None:
        self.runs = 0
        self.gate: asyncio.Event | None = None
        self.fail = False

    async def __call__(self) -> int:
        self.runs += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise RuntimeError("the computation failed")
        return self.runs


def _recent(c: Counter, fresh_for: float = 60.0, stale_for: float = 120.0) -> Recent[int]:
    return Recent(
        c, fresh_for=fresh_for, stale_for=stale_for, name="test", log=logging.getLogger("t")
    )


async def test_callers_at_once_share_one_computation_and_reuse_it_while_fresh() -> None:
    c = Counter()
    c.gate = asyncio.Event()
    r = _recent(c)
    waiting = [asyncio.create_task(r.get()) for _ in range(5)]
    await asyncio.sleep(0)
    c.gate.set()
    assert await asyncio.gather(*waiting) == [1] * 5
    assert await r.get() == 1 and c.runs == 1
    age = r.age()
    assert age is not None and 0 <= age < 60


async def test_a_stale_value_is_answered_while_the_next_is_computed() -> None:
    c = Counter()
    r = _recent(c, fresh_for=0.0)
    assert await r.get() == 1
    c.gate = asyncio.Event()
    assert await r.get() == 1  # not waited for: the refresh runs in the background
    await asyncio.sleep(0)
    assert await r.get() == 1 and c.runs == 2  # one refresh at a time
    c.gate.set()
    await r.close()
    assert c.runs == 2
    assert await r.get() == 2  # the refreshed value (and a refresh of it starts)
    await r.close()


async def test_older_than_stale_for_a_caller_waits_for_a_new_value() -> None:
    c = Counter()
    r = _recent(c, fresh_for=0.0, stale_for=0.0)
    assert [await r.get() for _ in range(3)] == [1, 2, 3]


async def test_a_failed_refresh_keeps_the_last_value_until_it_is_too_old() -> None:
    c = Counter()
    r = _recent(c, fresh_for=0.0)
    assert await r.get() == 1
    c.fail = True
    assert await r.get() == 1  # the background refresh fails: logged, not raised
    await r.close()
    assert await r.get() == 1
    await r.close()
    r.stale_for = 0.0
    with pytest.raises(RuntimeError):
        await r.get()  # too old: the caller waits, and sees the failure
