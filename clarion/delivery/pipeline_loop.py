"""The pipeline's background loop: flush due batches, release due channel digests (held
over a user's channel rate limit), send due scheduled sends and fold new events into the
analytics rollups (with their retention).

Runs next to the delivery worker (``clarion serve``'s embedded worker and ``clarion
worker``), polling every ``pipeline_poll_seconds`` (0.5 s by default), so a scheduled
send goes out within about a second of its time. Any number of these loops may run on
any number of machines: each batch and each scheduled send is claimed and written in one
transaction (``SKIP LOCKED`` on PostgreSQL, the write lock on SQLite), so it happens once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from clarion.errors import ClarionError, is_outage
from clarion.hub.tasks import wait_event
from clarion.services.analytics_rollups import RollupFollower
from clarion.services.batches import BatchService
from clarion.services.channel_digests import ChannelDigestService
from clarion.services.experiments import ExperimentService
from clarion.services.health import HealthService
from clarion.services.scheduling import SchedulingService

log = logging.getLogger("clarion.scheduler")


class PipelineLoop:
    def __init__(
        self,
        batches: BatchService,
        channel_digests: ChannelDigestService,
        scheduling: SchedulingService,
        *,
        rollups: RollupFollower | None = None,
        health: HealthService | None = None,
        experiments: ExperimentService | None = None,
        poll_seconds: float = 0.5,
    ) -> None:
        self.batches = batches
        self.channel_digests = channel_digests
        self.scheduling = scheduling
        self.poll_seconds = poll_seconds
        self._steps: list[Callable[[], Awaitable[int]]] = [
            batches.flush_due,
            channel_digests.flush_channel_digests,
            scheduling.run_due,
        ]
        if rollups is not None:
            self._steps.append(rollups.run_once)
        if health is not None:  # alerts: at most one check a minute
            self._steps.append(health.run_once)
        if experiments is not None:  # automatic winners: at most once a minute
            self._steps.append(experiments.run_once)
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run_once(self) -> int:
        """One round; returns how many batches, channel digests and scheduled sends were
        handled."""
        done = 0
        for step in self._steps:
            try:
                done += await step()
            except ClarionError as exc:
                if not is_outage(exc):  # an outage is logged once, where it is detected
                    log.warning("%s failed: %s", step.__qualname__, exc)
            except Exception:
                log.exception("%s crashed", step.__qualname__)
        return done

    async def run(self) -> None:
        log.info("pipeline loop started: poll=%.2fs", self.poll_seconds)
        while not self._stop.is_set():
            busy = await self.run_once()
            if busy:
                continue  # more may be due right away
            await wait_event(self._stop, self.poll_seconds)
        log.info("pipeline loop stopped")
