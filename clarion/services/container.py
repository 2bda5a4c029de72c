"""The application's services, built once from Settings and closed together.

``api/``, ``delivery/`` and the CLI reach the store and the hub only through this. What
runs on top of them (the HTTP app, delivery workers, the pipeline loop) is put together
by the composition root, clarion/runtime.py.
"""

from __future__ import annotations

import logging
from typing import Any

from clarion.config import Settings
from clarion.hub.hub import Hub
from clarion.services.actions import ActionService
from clarion.services.analytics import AnalyticsService
from clarion.services.analytics_rollups import RollupFollower
from clarion.services.auth import AuthService, resolve_secret
from clarion.services.batches import BatchService
from clarion.services.batching_rules import BatchingRuleService
from clarion.services.channel_digests import ChannelDigestService
from clarion.services.conversions import ConversionService
from clarion.services.dashboard import DashboardService
from clarion.services.dashboard_reads import DashboardReads
from clarion.services.deliveries import DeliveryService
from clarion.services.experiments import ExperimentService
from clarion.services.health import HealthService
from clarion.services.idempotency import IdempotencyService
from clarion.services.inbox import InboxService
from clarion.services.planner import Planner
from clarion.services.preferences import PreferenceService
from clarion.services.privacy import PrivacyService
from clarion.services.push_subscriptions import PushSubscriptionService
from clarion.services.realtime import RealtimeService, WorkerWake
from clarion.services.recent import Recent
from clarion.services.scheduling import SchedulingService
from clarion.services.sending import SendingService
from clarion.services.status import RECENT_FRESH_FOR, RECENT_STALE_FOR, system_status
from clarion.services.templates import TemplateService
from clarion.services.unsubscribe import UnsubscribeSigner
from clarion.services.users import UserService
from clarion.services.webhook_endpoints import WebhookService
from clarion.store.db import Database

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
        # Stored templates, preferences, batching rules, actions.
        self.templates = TemplateService(self.db)
        self.preferences = PreferenceService(self.db)
        self.batching = BatchingRuleService(self.db)
        self.actions = ActionService(self.db, self.inbox, settings)
        # The realtime hub: built here, connected in start(); tells live clients of every
        # committed change, and holds the rate limiters.
        self.hub = Hub.build(settings)
        # The send pipeline: plan per recipient (templates, batches, preferences, quiet
        # hours, channel rate limits), write in one transaction; batches and scheduled
        # sends are written later by the same write() (see delivery/pipeline_loop.py).
        planner = Planner(
            self.db, settings, self.templates, self.preferences, self.batching, self.hub.limiter
        )
        self.sending = SendingService(
            self.db, self.idempotency, planner, max_recipients=settings.max_recipients
        )
        self.batches = BatchService(self.db, self.sending)
        self.channel_digests = ChannelDigestService(self.db)
        self.scheduling = SchedulingService(self.db, self.sending)
        self.realtime = RealtimeService(self.hub, self.inbox)
        self.sending.listeners.append(self.realtime)
        self.worker_wake = WorkerWake(self.hub)
        self.sending.listeners.append(self.worker_wake)
        self.inbox.listeners.append(self.realtime)
        self.deliveries = DeliveryService(self.db, settings, UnsubscribeSigner(secret))
        # Released channel digests wake the embedded worker (the same list object).
        self.channel_digests.release_callbacks = self.deliveries.wake_callbacks
        self.webhooks = WebhookService(self.db, settings)
        self.push_subscriptions = PushSubscriptionService(self.db, settings)
        # A user's data: export and erasure (the pseudonyms of erased users derive from
        # the secret key).
        self.privacy = PrivacyService(self.db, secret, settings.privacy_batch_size)
        # Analytics: the rollup follower (run by the pipeline loop) and the reads over it.
        self.rollups = RollupFollower(self.db, retention_days=settings.event_retention_days)
        self.analytics = AnalyticsService(self.db, retention_days=settings.event_retention_days)
        self.health = HealthService(
            self.db,
            self.hub,
            self.sending,
            threshold=settings.health_alert_threshold,
            alert_user=settings.health_alert_user,
        )
        self.conversions = ConversionService(self.db, window_hours=settings.conversion_window_hours)
        # A/B experiments: they shape their target's sends; the rollup follower counts
        # their outcomes once per user.
        self.experiments = ExperimentService(self.db)
        self.sending.experiments = self.experiments
        self.rollups.page_listeners.append(self.experiments.fold)
        # The operator dashboard: its sessions, its reads, the audit log.
        self.dashboard = DashboardService(self.db, self.auth)
        self.dashboard_reads = DashboardReads(self.db, self.deliveries)
        # The status as the analytics dashboard shows it: shared by every caller for up to
        # a second, never waited for while under three seconds old (services/status.py).
        self.recent_status: Recent[dict[str, Any]] = Recent(
            self.system_status,
            fresh_for=RECENT_FRESH_FOR,
            stale_for=RECENT_STALE_FOR,
            name="clarion-recent-status",
            log=log,
        )

    async def start(self) -> None:
        """Start the background parts the services themselves need (the hub). Delivery
        workers are started by the composition root (clarion/runtime.py)."""
        await self.hub.start()

    async def system_status(self) -> dict[str, Any]:
        return await system_status(self.db, self.hub)

    async def close(self) -> None:
        await self.sending.close()
        await self.actions.close()
        await self.health.close()
        await self.recent_status.close()
        await self.hub.close()
        await self.db.dispose()
