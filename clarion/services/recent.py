"""A value that many callers poll and that is costly to compute (the health score, the
state of the outbox and the dependencies shown on the analytics dashboard): computed at
most once every ``fresh_for`` seconds for every caller meanwhile, and answered up to
``stale_for`` seconds old while the next one is computed in the background, so that a
screen polling it never waits for the computation (it would be the slowest of its
requests, once a second). Older than ``stale_for``, a caller waits for a new one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Recent(Generic[T]):
    def __init__(
        self,
        compute: Callable[[], Awaitable[T]],
        *,
        fresh_for: float,
        stale_for: float,
        name: str,
        log: logging.Logger,
    ) -> None:
        self._compute = compute
        self.fresh_for = fresh_for
        self.stale_for = stale_for
        self._name = name
        self._log = log
        self._last: tuple[float, T] | None = None
        self._computing = asyncio.Lock()
        self._refresh: asyncio.Task[T] | None = None

    async def get(self) -> T:
        """The value, at most ``stale_for`` seconds old (shared by every caller: read it,
        do not change it)."""
        last = self._last
        if last is not None:
            age = time.monotonic() - last[0]
            if age < self.fresh_for:
                return last[1]
            if age < self.stale_for:
                if self._refresh is None or self._refresh.done():
                    self._refresh = asyncio.create_task(self._renew(), name=self._name)
                return last[1]
        return await self._renew()

    def age(self) -> float | None:
        """Seconds since the value answered now was computed (``None``: none yet)."""
        return None if self._last is None else time.monotonic() - self._last[0]

    async def close(self) -> None:
        """Wait for a background computation to end (it is short)."""
        if self._refresh is not None and not self._refresh.done():
            await asyncio.gather(self._refresh, return_exceptions=True)

    async def _renew(self) -> T:
        """Compute a new value, once for every caller meanwhile."""
        async with self._computing:
            last = self._last
            if last is not None and time.monotonic() - last[0] < self.fresh_for:
                return last[1]
            started = time.monotonic()
            try:
                value = await self._compute()
            except Exception:
                if last is not None and asyncio.current_task() is self._refresh:
                    # A refresh nobody awaits: the last value stands until stale_for, and
                    # the next caller after that waits for (and sees) the failure.
                    self._log.exception("%s failed", self._name)
                    return last[1]
                raise
            # Its age counts from when the computation began: what it read is that old.
            self._last = (started, value)
            return value
