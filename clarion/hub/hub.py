"""The hub as one object: what the app builds at startup and closes at shutdown.

Why a bundle: the pieces share one Redis link and one node id, must start in order (link
first, so the others see its health) and close in reverse; the API and services should
not each redo that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from clarion.config import Settings
from clarion.hub.broker import Broker
from clarion.hub.factory import build_broker
from clarion.hub.metrics import HubMetrics, hub_metrics
from clarion.hub.ratelimit import RateLimiter
from clarion.hub.redis_link import DEFAULT_PREFIX, RedisLink, make_node_id
from clarion.hub.relay import RelayBroker
from clarion.hub.sessions import SessionRegistry


@dataclass(slots=True)
class Hub:
    node_id: str
    redis: RedisLink | None
    broker: Broker
    limiter: RateLimiter
    sessions: SessionRegistry
    metrics: HubMetrics

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        node_id: str | None = None,
        redis_prefix: str | None = None,
        registry: CollectorRegistry | None = None,
    ) -> Hub:
        """Construct everything; nothing connects until :meth:`start`."""
        metrics = hub_metrics(registry)
        node = node_id or make_node_id(settings.port)
        prefix = redis_prefix or settings.redis_prefix or DEFAULT_PREFIX
        link = (
            RedisLink(
                settings.redis_url,
                prefix=prefix,
                socket_timeout=settings.redis_timeout_seconds,
                metrics=metrics,
            )
            if settings.redis_url
            else None
        )
        return cls(
            node_id=node,
            redis=link,
            broker=build_broker(
                settings,
                link,
                node_id=node,
                metrics=metrics,
                queue_size=settings.ws_queue_size,
                # Same prefix, same NOTIFY channel: deployments sharing a database apart.
                pg_channel=re.sub(r"\W", "_", prefix) + "_hub",
            ),
            limiter=RateLimiter(link),
            sessions=SessionRegistry(link, node),
            metrics=metrics,
        )

    async def start(self) -> None:
        """Redis first (one ping, so everyone starts with a known state), then the rest.
        Never fails because Redis or PostgreSQL is down: they are retried in background."""
        if self.redis is not None:
            await self.redis.start()
        await self.broker.start()
        await self.sessions.start()

    async def close(self) -> None:
        await self.sessions.close()
        await self.broker.close()
        if self.redis is not None:
            await self.redis.close()

    def status(self) -> dict[str, Any]:
        """For ``/notifications/system/status`` and ``/readyz``: degraded, never down."""
        broker = self.broker
        return {
            "node_id": self.node_id,
            "broker": {
                "backend": broker.backend,
                "active_transport": (
                    broker.active_transport if isinstance(broker, RelayBroker) else "local"
                ),
                "healthy": broker.healthy,
                "reason": broker.reason,
                "local_subscriptions": broker.local_subscription_count(),
            },
            "redis": None
            if self.redis is None
            else {
                "url": self.redis.url_redacted,
                "healthy": self.redis.healthy,
                "reason": self.redis.reason,
            },
        }
