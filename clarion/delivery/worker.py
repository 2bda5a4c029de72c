"""The delivery worker: claim due deliveries under a lease, send them concurrently, record.

Two kinds of loop::

    claimers (2): keep jobs ready -> claim what is missing (at most one batch)
                  -> if the claim came back short: sleep until woken, polled, or stopped
    starter:      start ready jobs while fewer than ``concurrency`` are in flight

The claimers keep up to ``2 * max(batch_size, concurrency)`` jobs ready ahead of the
sends, so claiming never leaves the slots empty, and two of them let one claim's round
trips overlap another's. A worker is bound by the latency of its transactions far more
than by their CPU: overlapping them is what lets one process use its core.

* Sends run concurrently, at most ``concurrency`` at a time. Results go to a queue that
  the recorder writes in batches (one transaction for many results, up to
  ``RECORD_PARALLEL`` such transactions in flight; they touch disjoint rows): with
  SQLite's single writer and PostgreSQL's commit cost, batching is what makes throughput.
* A heartbeat renews the leases of claimed-but-unrecorded deliveries every third of the
  lease, so a slow provider call is not taken over; a SIGKILLed worker stops renewing, its
  leases run out and the rows are due again for any worker (at least once).
* Wake-ups: in-process, ``wake()`` (called by a SendingService listener after commit);
  across processes, a poll every ``poll_seconds`` (one indexed query, so idle costs
  nothing noticeable).
* ``stop()`` (SIGTERM): claim nothing more, hand back claimed jobs not yet started (due
  again at once, the attempt not counted), finish in-flight sends, record them, return.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Sequence
from typing import Any

from clarion.delivery.channels.registry import ChannelRegistry
from clarion.delivery.dispatch import dispatch
from clarion.domain.jobs import Job, Result
from clarion.domain.types import ChannelName, DeliveryStatus
from clarion.errors import ClarionError, is_outage
from clarion.hub.tasks import wait_event
from clarion.metrics import DELIVERIES, DELIVERY_ATTEMPT_LATENCY, OUTBOX_BACKLOG
from clarion.services.deliveries import DeliveryService

log = logging.getLogger("clarion.worker")

RECORD_BATCH = 500
#: Record transactions in flight at once (PostgreSQL; SQLite serialises them anyway).
RECORD_PARALLEL = 3
#: Claim transactions in flight at once.
CLAIMERS = 2
BACKLOG_SAMPLE_SECONDS = 10.0


def make_worker_id() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class WakeListener:
    """A SendingService listener that wakes the worker after new notifications commit."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker

    async def notifications_created(self, items: Sequence[dict[str, Any]]) -> None:
        # Only deliveries need a worker: an in-app-only send (most of them) has no
        # outbox row, and a wake would cost a claim round for nothing.
        if any(channel != ChannelName.IN_APP for item in items for channel in item["channels"]):
            self._worker.wake()

    async def notification_changed(self, *args: Any, **kwargs: Any) -> None:
        return None


class Worker:
    def __init__(
        self,
        deliveries: DeliveryService,
        registry: ChannelRegistry,
        *,
        concurrency: int = 64,
        batch_size: int = 100,
        lease_seconds: float = 60.0,
        poll_seconds: float = 1.0,
        worker_id: str | None = None,
    ) -> None:
        self.deliveries = deliveries
        self.registry = registry
        self.concurrency = max(1, concurrency)
        self.batch_size = max(1, batch_size)
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.worker_id = worker_id or make_worker_id()
        self._min_claim = max(1, min(self.batch_size, self.concurrency) // 4)
        self._wake = asyncio.Event()
        self._slot = asyncio.Event()
        self._space = asyncio.Event()
        self._ready: deque[Job] = deque()  # claimed, not started yet
        self._claiming = 0  # rows asked for by claims in flight
        self._high_water = 2 * max(self.batch_size, self.concurrency)
        self._failure: BaseException | None = None
        self._stopping = False
        self._inflight: set[asyncio.Task[None]] = set()
        self._leased: set[str] = set()  # claimed, not yet recorded
        self._results: asyncio.Queue[Result | None] = asyncio.Queue()
        self.processed = 0

    # --- control ------------------------------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Stop claiming; ``run`` returns once in-flight deliveries are recorded."""
        if not self._stopping:
            log.info("worker %s draining %d in-flight", self.worker_id, len(self._inflight))
        self._stopping = True
        self._wake.set()
        self._slot.set()
        self._space.set()

    @property
    def stopping(self) -> bool:
        return self._stopping

    # --- main loop ----------------------------------------------------------------------
    async def run(self) -> None:
        log.info(
            "worker %s started: concurrency=%d batch=%d lease=%.1fs poll=%.1fs channels=%s",
            self.worker_id,
            self.concurrency,
            self.batch_size,
            self.lease_seconds,
            self.poll_seconds,
            ",".join(self.registry.names()),
        )
        recorder = asyncio.create_task(self._record_loop(), name="clarion-worker-recorder")
        heartbeat = asyncio.create_task(self._heartbeat_loop(), name="clarion-worker-heartbeat")
        sampler = asyncio.create_task(self._backlog_loop(), name="clarion-worker-backlog")
        claimers = [
            asyncio.create_task(self._claim_loop(), name=f"clarion-worker-claimer-{i}")
            for i in range(CLAIMERS)
        ]
        for claimer in claimers:
            claimer.add_done_callback(self._claimer_done)
        try:
            while not self._stopping:
                self._slot.clear()
                started = 0
                while self._ready and len(self._inflight) < self.concurrency:
                    self._start(self._ready.popleft())
                    started += 1
                if started:
                    self._space.set()
                await self._slot.wait()  # a send finished, jobs arrived, or stop()
        finally:
            self._stopping = True
            self._space.set()
            self._wake.set()
            await asyncio.gather(*claimers, return_exceptions=True)
            await self._release_ready()
            if self._inflight:
                await asyncio.gather(*self._inflight, return_exceptions=True)
            await self._results.put(None)
            await recorder
            heartbeat.cancel()
            sampler.cancel()
            await asyncio.gather(heartbeat, sampler, return_exceptions=True)
            log.info("worker %s stopped after %d deliveries", self.worker_id, self.processed)
        if self._failure is not None:
            raise self._failure  # as when the claim ran inside this loop: the owner logs it

    def _claimer_done(self, task: asyncio.Task[None]) -> None:
        # A claimer dying of an unexpected error must not leave a worker that never
        # claims again: drain what is in flight and fail the run.
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()
            self.stop()

    async def _claim_loop(self) -> None:
        while not self._stopping:
            # Ready or being claimed: up to two batches, or two rounds of the send slots,
            # whichever is more; at most one batch per claim. (Not more: rows this worker
            # holds are rows other workers cannot take while a slow endpoint stalls it.)
            want = min(self.batch_size, self._high_water - len(self._ready) - self._claiming)
            # Claim in chunks: one transaction per freed slot would make the outbox, not
            # the providers, the bottleneck.
            if want < self._min_claim:
                self._space.clear()
                await self._space.wait()
                continue
            self._wake.clear()
            self._claiming += want
            try:
                jobs = await self.deliveries.claim(self.worker_id, want, self.lease_seconds)
            except ClarionError as exc:
                if not is_outage(exc):
                    log.warning("claim failed (%s); retrying in %.1fs", exc, self.poll_seconds)
                jobs = []
            finally:
                self._claiming -= want
            self._space.set()  # the other claimer may go now
            for job in jobs:
                self._leased.add(job.id)
                self._ready.append(job)
            if jobs:
                self._slot.set()
            if len(jobs) < want:
                await self._sleep(self.poll_seconds)

    async def _release_ready(self) -> None:
        """Stopping: claimed jobs that never started are due again at once."""
        ids = [job.id for job in self._ready]
        self._ready.clear()
        if not ids:
            return
        try:
            await self.deliveries.release(self.worker_id, ids)
        except ClarionError as exc:  # their leases run out instead
            log.warning("releasing %d unstarted deliveries failed: %s", len(ids), exc)
        self._leased.difference_update(ids)

    async def _sleep(self, seconds: float) -> None:
        await wait_event(self._wake, seconds)

    def _start(self, job: Job) -> None:
        self._leased.add(job.id)
        task = asyncio.create_task(self._send(job))
        self._inflight.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._slot.set()

    async def _send(self, job: Job) -> None:
        result = await dispatch(job, self.registry)
        if result.outcome is not None:
            DELIVERY_ATTEMPT_LATENCY.labels(job.channel).observe(result.latency_ms / 1000)
        await self._results.put(result)

    # --- recording ----------------------------------------------------------------------
    async def _record_loop(self) -> None:
        finished = False
        slots = asyncio.Semaphore(RECORD_PARALLEL)
        writing: set[asyncio.Task[None]] = set()

        async def write(batch: list[Result]) -> None:
            try:
                await self._record(batch)
            finally:
                slots.release()

        while not finished:
            first = await self._results.get()
            batch: list[Result] = []
            if first is None:
                finished = True
            else:
                batch.append(first)
            await slots.acquire()  # results keep queueing meanwhile: bigger batches
            while len(batch) < RECORD_BATCH and not self._results.empty():
                item = self._results.get_nowait()
                if item is None:
                    finished = True
                else:
                    batch.append(item)
            if batch:
                task = asyncio.create_task(write(batch))
                writing.add(task)
                task.add_done_callback(writing.discard)
            else:
                slots.release()
        if writing:
            await asyncio.gather(*writing)

    async def _record(self, batch: list[Result]) -> None:
        delay = 0.5
        while True:
            try:
                written = await self.deliveries.record(self.worker_id, batch)
                break
            except ClarionError as exc:
                # The database is down: keep the results and try again; if we die first,
                # the leases expire and the deliveries are sent again (at least once).
                if not is_outage(exc):
                    log.warning("recording %d results failed (%s); retrying", len(batch), exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        for res, status in written:
            self._leased.discard(res.job.id)
            self.processed += 1
            DELIVERIES.labels(res.job.channel, status).inc()
            self._log_outcome(res, status)

    def _log_outcome(self, res: Result, status: str) -> None:
        job = res.job
        attempt = job.delivery.attempts
        why = res.suppress_reason or res.detail or ""
        log.info(
            "%6dms %s %s:%s attempt=%d -> %s%s",
            res.latency_ms,
            job.id,
            job.channel,
            job.delivery.notification_id,
            attempt,
            status,
            f" ({why})" if why and status != DeliveryStatus.DELIVERED else "",
        )

    # --- leases and metrics -------------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        interval = max(self.lease_seconds / 3, 0.05)
        while True:
            await asyncio.sleep(interval)
            ids = list(self._leased)
            if not ids:
                continue
            try:
                await self.deliveries.renew(self.worker_id, ids, self.lease_seconds)
            except ClarionError as exc:
                if not is_outage(exc):
                    log.warning("lease renewal failed: %s", exc)

    async def _backlog_loop(self) -> None:
        while True:
            with contextlib.suppress(ClarionError):
                OUTBOX_BACKLOG.set(await self.deliveries.backlog())
            await asyncio.sleep(BACKLOG_SAMPLE_SECONDS)

    # --- for tests and one-shot runs ----------------------------------------------------
    async def run_until_idle(self, max_seconds: float = 30.0) -> int:
        """Process due work until a claim comes back empty; returns deliveries recorded."""
        start = self.processed
        deadline = time.monotonic() + max_seconds
        recorder = asyncio.create_task(self._record_loop())
        try:
            while time.monotonic() < deadline:
                jobs = await self.deliveries.claim(
                    self.worker_id, self.batch_size, self.lease_seconds
                )
                if not jobs:
                    break
                for job in jobs:
                    self._start(job)
                await asyncio.gather(*self._inflight, return_exceptions=True)
        finally:
            await asyncio.gather(*self._inflight, return_exceptions=True)
            await self._results.put(None)
            await recorder
        return self.processed - start
