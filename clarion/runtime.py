"""The composition root: the services, the delivery worker and the pipeline loop, and the
HTTP app on top of them, put together for one process.

Everything below this module knows only what is beneath it (domain < store, hub <
services < delivery, api, web); this is the one place that may reach into all of them,
which is why the CLI and nothing else imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from fastapi import FastAPI

from clarion.api.app import create_app
from clarion.config import Settings
from clarion.delivery.channels.live import LiveChannel
from clarion.delivery.channels.registry import build_registry
from clarion.delivery.pipeline_loop import PipelineLoop
from clarion.delivery.worker import WakeListener, Worker
from clarion.hub.tasks import stop_task
from clarion.services.container import Services
from clarion.web import routes as web_routes
from clarion.web.dashboard import routes as dashboard_routes

log = logging.getLogger("clarion.runtime")


class Runtime:
    """One process's services plus what runs on them: an embedded delivery worker (with
    its wake-up listener) and the loop that releases batches and scheduled sends."""

    def __init__(self, settings: Settings, services: Services | None = None) -> None:
        self.settings = settings
        self.services = services or Services(settings)
        self.worker: Worker | None = None
        self._worker_task: asyncio.Task[Any] | None = None
        self._wake_task: asyncio.Task[None] | None = None
        self.pipeline_loop: PipelineLoop | None = None
        self._pipeline_task: asyncio.Task[Any] | None = None

    async def start(self) -> None:
        """Start the services and, unless ``CLARION_EMBEDDED_WORKER=false``, a worker."""
        await self.services.start()
        if self.settings.embedded_worker:
            await self.start_worker()

    async def start_worker(self, **overrides: Any) -> Worker:
        """Run a delivery worker in this process, woken directly after each send."""
        s, svc = self.settings, self.services
        options: dict[str, Any] = {
            "concurrency": s.worker_concurrency,
            "batch_size": s.worker_batch_size,
            "lease_seconds": s.worker_lease_seconds,
            "poll_seconds": s.worker_poll_seconds,
            **overrides,
        }
        registry = build_registry(s)
        registry.register(LiveChannel(svc.hub))  # the hub is ours, not the settings'
        worker = Worker(svc.deliveries, registry, **options)
        svc.sending.listeners.append(WakeListener(worker))
        svc.deliveries.wake_callbacks.append(worker.wake)
        self.worker = worker
        self._worker_task = asyncio.create_task(worker.run(), name="clarion-worker")
        # Sends committed by other processes wake this worker through the hub.
        self._wake_task = asyncio.create_task(
            svc.worker_wake.listen(worker.wake), name="clarion-worker-wake"
        )
        # Batches and scheduled sends are released by the same processes that deliver.
        loop = PipelineLoop(
            svc.batches,
            svc.channel_digests,
            svc.scheduling,
            rollups=svc.rollups if s.analytics_rollups else None,
            health=svc.health if s.analytics_rollups else None,
            experiments=svc.experiments if s.analytics_rollups else None,
            poll_seconds=s.pipeline_poll_seconds,
        )
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
        svc = self.services
        if self.pipeline_loop is not None and self._pipeline_task is not None:
            self.pipeline_loop.stop()
            try:
                await self._pipeline_task
            except Exception:
                log.exception("pipeline loop failed")
            self.pipeline_loop = self._pipeline_task = None
        await stop_task(self._wake_task)
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
        svc.sending.listeners = [
            x for x in svc.sending.listeners if getattr(x, "_worker", None) is not worker
        ]
        svc.deliveries.wake_callbacks.remove(worker.wake)
        self.worker = self._worker_task = None

    async def close(self) -> None:
        """Stop accepting sends (flushing those queued), drain the worker, close the rest."""
        await self.services.sending.close()
        await self.stop_worker()
        await self.services.close()


def build_app(settings: Settings) -> FastAPI:
    """The app of one ``clarion serve`` process: its runtime is built and started in the
    app's lifespan, on the event loop that serves it, with the embedded worker."""
    app = create_app(settings, runtime=lambda: Runtime(settings))
    web_routes.install(app, settings)  # the widget, its embedding page and the demo
    dashboard_routes.install(app)  # the operator dashboard (docs/dashboard.md)
    return app
