"""Stopping background tasks within a bound.

``task.cancel(); await task`` waits forever when the cancellation is lost, and it can be:
Python 3.11's ``asyncio.wait_for`` returns the inner result instead of raising when the
awaited event fires in the same loop iteration as the cancel (a Redis or PostgreSQL
health flip at shutdown does exactly that), and a library's teardown may shield itself.
A loop task that swallowed its cancel carries on, and ``close()`` hangs with it: under a
loaded machine the hub's degradation test hung past 120 s that way. So: cancel again
until the task is done, and give up (logged) after a bound.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("clarion.hub")

#: How long ``close()`` waits for one background task before abandoning it.
STOP_WITHIN = 5.0


async def stop_task(task: asyncio.Task[object] | None, within: float = STOP_WITHIN) -> bool:
    """Cancel ``task`` and wait until it is done, re-cancelling while waiting; at most
    ``within`` seconds. True when it stopped."""
    if task is None:
        return True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not task.done():
        remaining = deadline - loop.time()
        if remaining <= 0:
            log.warning("task %s did not stop within %.1f s: abandoned", task.get_name(), within)
            return False
        task.cancel()
        await asyncio.wait({task}, timeout=min(0.25, remaining))
    if not task.cancelled() and task.exception() is not None:
        log.warning("task %s ended with %r", task.get_name(), task.exception())
    return True


async def wait_event(event: asyncio.Event, within: float) -> bool:
    """``event.wait()`` for at most ``within`` seconds; True when it is set. Through
    ``asyncio.timeout``, which (unlike 3.11's ``wait_for``) never loses a cancellation
    that arrives as the event fires."""
    try:
        async with asyncio.timeout(within):
            await event.wait()
    except TimeoutError:
        pass
    return event.is_set()
