"""close() of a hub component must end even when its background task loses a cancel
(Python 3.11's wait_for returns the inner result when the awaited event fires in the
same loop iteration as the cancel; a library teardown may shield itself)."""

from __future__ import annotations

import asyncio
import contextlib

from clarion.hub.tasks import stop_task, wait_event


async def stubborn(swallow: int) -> None:
    """A loop that survives its first ``swallow`` cancellations, as a loop around a
    cancel-losing wait does."""
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if swallow <= 0:
                raise
            swallow -= 1


async def test_a_task_that_loses_cancels_is_stopped() -> None:
    task = asyncio.create_task(stubborn(3))
    await asyncio.sleep(0)
    async with asyncio.timeout(10):
        assert await stop_task(task, within=5)
    assert task.cancelled()


async def test_a_task_that_never_stops_is_abandoned_within_the_bound() -> None:
    task = asyncio.create_task(stubborn(10**9))
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert not await stop_task(task, within=0.5)
    assert loop.time() - t0 < 5
    task.get_coro().close()  # type: ignore[union-attr]
    with contextlib.suppress(BaseException):
        task.cancel()


async def test_wait_event_keeps_a_cancel_that_arrives_with_the_event() -> None:
    event = asyncio.Event()
    woke: list[bool] = []

    async def loop_on_event() -> None:
        while True:  # the shape of the hub's monitor loops
            woke.append(await wait_event(event, 3600))
            event.clear()

    task = asyncio.create_task(loop_on_event())
    for _ in range(3):
        await asyncio.sleep(0)
    event.set()
    task.cancel()  # in the same iteration as the event
    done, _ = await asyncio.wait({task}, timeout=2)
    assert task in done and task.cancelled(), woke
