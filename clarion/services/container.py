"""The application's services, built once from Settings and closed together.

``api/``, ``delivery/`` and the CLI reach the store and the hub only through this.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from clarion.config import Settings
from clarion.hub.hub import Hub
from clarion.services.actions import ActionService
from clarion.services.auth import AuthService, resolve_secret
from clarion.services.batching_rules import BatchingRuleService
from clarion.services.deliveries import (
    DeliveryService,
    PushSubscriptionService,
    UnsubscribeSigner,
    WebhookService,
)
from clarion.services.digests import DigestService
from clarion.services.idempotency import IdempotencyService
from clarion.services.inbox import InboxService
from clarion.services.pipeline import Planner
from clarion.services.preferences import PreferenceService
from clarion.services.privacy import PrivacyService
from clarion.services.realtime import RealtimeService, WorkerWake
from clarion.services.scheduling import SchedulingService
from clarion.services.sending import SendingService
from clarion.services.status import system_status
from clarion.services.templates import TemplateService
from clarion.services.users import UserService
from clarion.store.db import Database

if TYPE_CHECKING:
    from clarion.delivery.scheduler import PipelineLoop
    from clarion.delivery.worker import Worker

log = logging.getLogger("clarion.services")


class Services:
    def __init__(self, settings: Settings, db: Database | None = None) -> None:
        self.settings = settings
        self.db = db or Database(settings.database_url, pool_size=settings.db_pool_size)
        secret = resolve_secret(settings)
        self.auth = AuthService(self.db, settings, secret)
        self.idempotency = IdempotencyService(self.db, settings.idempotency_ttl_seconds)
        self.inbox = InboxService(self.db)
        self.users = UserService(self.db, user_apprise_urls=settings.user_apprise_urls)
        # Smart processing (issue 6): stored templates, preferences, batching rules, actions.
        self.templates = TemplateService(self.db)
        self.preferences = PreferenceService(self.db)
        self.batching = BatchingRuleService(self.db)
        self.actions = ActionService(self.db, self.inbox, settings)
        # The realtime hub: built here, connected in start(); tells live clients of every
        # committed change and fronts the unread counts with a cache (and rate limits).
        self.hub = Hub.build(settings)
        # The send pipeline: plan per recipient (templates, batches, preferences, quiet
        # hours, channel rate limits), write in one transaction; batches and scheduled
        # sends are written later by the same write() (see delivery/scheduler.py).
        planner = Planner(
            self.db, settings, self.templates, self.preferences, self.batching, self.hub.limiter
        )
        self.sending = SendingService(
            self.db, self.idempotency, planner, max_recipients=settings.max_recipients
        )
        self.digests = DigestService(self.db, self.sending)
        self.scheduling = SchedulingService(self.db, self.sending)
        self.realtime = RealtimeService(self.hub, self.inbox)
        self.sending.listeners.append(self.realtime)
        self.worker_wake = WorkerWake(self.hub)
        self.sending.listeners.append(self.worker_wake)
        self.inbox.listeners.append(self.realtime)
        self.deliveries = DeliveryService(self.db, settings, UnsubscribeSigner(secret))
        # Released channel digests wake the embedded worker (the same list object).
        self.digests.release_callbacks = self.deliveries.wake_callbacks
        self.webhooks = WebhookService(self.db, settings)
        self.push_subscriptions = PushSubscriptionService(self.db, settings)
        # A user's data: export and erasure (the pseudonyms of erased users derive from
        # the secret key).
        self.privacy = PrivacyService(self.db, secret, settings.privacy_batch_size)
        self.worker: Worker | None = None
        self._worker_task: asyncio.Task[Any] | None = None
        self._wake_task: asyncio.Task[None] | None = None
        self.pipeline_loop: PipelineLoop | None = None
        self._pipeline_task: asyncio.Task[Any] | None = None

    async def start(self) -> None:
        """Start background parts (hub, workers): none are needed by the inbox itself."""
        await self.hub.start()
        if self.settings.embedded_worker:
            await self.start_worker()

    async def start_worker(self, **overrides: Any) -> Worker:
        """Run a delivery worker in this process, woken directly after each send."""
        # Imported here: delivery/ sits above services/ (it calls us), so only the
        # composition root may reach down into it.
        from clarion.delivery.channels.registry import build_registry
        from clarion.delivery.scheduler import PipelineLoop
        from clarion.delivery.worker import WakeListener, Worker

        s = self.settings
        options: dict[str, Any] = {
            "concurrency": s.worker_concurrency,
            "batch_size": s.worker_batch_size,
            "lease_seconds": s.worker_lease_seconds,
            "poll_seconds": s.worker_poll_seconds,
            **overrides,
        }
        worker = Worker(self.deliveries, build_registry(s), **options)
        self.sending.listeners.append(WakeListener(worker))
        self.deliveries.wake_callbacks.append(worker.wake)
        self.worker = worker
        self._worker_task = asyncio.create_task(worker.run(), name="clarion-worker")
        # Sends committed by other processes wake this worker through the hub.
        self._wake_task = asyncio.create_task(
            self.worker_wake.listen(worker.wake), name="clarion-worker-wake"
        )
        # Batches and scheduled sends are released by the same processes that deliver.
        loop = PipelineLoop(self.digests, self.scheduling, poll_seconds=s.pipeline_poll_seconds)
        self.pipeline_loop = loop
        self._pipeline_task = asyncio.create_task(loop.run(), name="clarion-pipeline")
        return worker

    async def stop_worker_when_done(self) -> None:
        """Wait for the worker to return (after ``worker.stop()``), then clean up."""
        if self._worker_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._worker_task)
        await self.stop_worker()

    async def stop_worker(self) -> None:
        """Drain the worker: in-flight deliveries finish and are recorded."""
        if self.pipeline_loop is not None and self._pipeline_task is not None:
            self.pipeline_loop.stop()
            try:
                await self._pipeline_task
            except Exception:
                log.exception("pipeline loop failed")
            self.pipeline_loop = self._pipeline_task = None
        if self._wake_task is not None:
            self._wake_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._wake_task
            self._wake_task = None
        worker, task = self.worker, self._worker_task
        if worker is None or task is None:
            return
        worker.stop()
        try:
            await task
        except Exception:
            log.exception("worker failed")
        await worker.registry.aclose()
        self.sending.listeners = [
            x for x in self.sending.listeners if getattr(x, "_worker", None) is not worker
        ]
        self.deliveries.wake_callbacks.remove(worker.wake)
        self.worker = self._worker_task = None

    async def system_status(self) -> dict[str, Any]:
        return await system_status(self.db, self.hub)

    async def close(self) -> None:
        await self.sending.close()
        await self.stop_worker()
        await self.actions.close()
        await self.hub.close()
        await self.db.dispose()
