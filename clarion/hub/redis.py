"""Redis pub/sub between nodes.

Channel scheme: ONE channel per deployment, ``{prefix}:hub`` (``clarion:hub`` by default).
Every node subscribes to it over one pub/sub connection and picks out the users it has
subscribers for (a dict lookup). Why one channel rather than one per user: ``publish_many``
to thousands of users is one ``PUBLISH``; no SUBSCRIBE/UNSUBSCRIBE churn as sockets come
and go; resubscribing after a Redis restart is one command. The cost — every node decodes
every envelope header — is small for the tens of nodes a self-hosted deployment runs; use
:class:`~clarion.hub.sessions.SessionRegistry` to skip publishing to users with no
connection at all.

Listening survives Redis restarts: on error the pub/sub connection is dropped and
re-created with exponential backoff (cut short when the :class:`RedisLink` sees Redis come
back), then re-subscribed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.exceptions import RedisError

from clarion.hub.broker import DEFAULT_YIELD_EVERY
from clarion.hub.metrics import HubMetrics
from clarion.hub.redis_link import RedisLink
from clarion.hub.relay import EnvelopeHandler, RelayBroker, Transport, TransportError
from clarion.hub.tasks import stop_task, wait_event

log = logging.getLogger("clarion.hub.redis")


class RedisTransport(Transport):
    name = "redis"

    def __init__(
        self,
        link: RedisLink,
        *,
        channel: str | None = None,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
    ) -> None:
        self.link = link
        self.channel = channel or link.key("hub")
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._handler: EnvelopeHandler | None = None
        self._task: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._listen_error: str | None = "not started"

    async def start(self, on_envelope: EnvelopeHandler) -> None:
        self._handler = on_envelope
        self.link.on_change(self._on_link_change)
        self._task = asyncio.create_task(self._listen(), name="clarion-redis-pubsub")

    async def close(self) -> None:
        await stop_task(self._task)
        self._task = None
        self._subscribed.clear()

    @property
    def healthy(self) -> bool:
        return self.link.healthy

    @property
    def reason(self) -> str | None:
        if not self.link.healthy:
            return self.link.reason
        return None if self._subscribed.is_set() else f"pub/sub not listening: {self._listen_error}"

    @property
    def listening(self) -> bool:
        """Subscribed right now (this node receives other nodes' pushes over Redis)."""
        return self._subscribed.is_set()

    async def wait_listening(self, within: float) -> bool:
        return await wait_event(self._subscribed, within)

    async def send(self, data: bytes) -> None:
        try:
            await self.link.client.publish(self.channel, data)
        except (RedisError, OSError) as exc:
            self.link.report_error("broker", exc)
            raise TransportError(f"redis publish failed: {exc}") from exc

    async def _on_link_change(self, up: bool) -> None:
        if up:
            self._kick.set()  # skip the rest of the backoff: resubscribe now

    async def _listen(self) -> None:
        delay = self.backoff_initial
        while True:
            pubsub = self.link.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self._subscribed.set()
                self._listen_error = None
                delay = self.backoff_initial
                log.info("listening on redis channel %s", self.channel)
                while True:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg is not None and msg["type"] == "message" and self._handler:
                        try:
                            await self._handler(msg["data"])
                        except Exception:  # one bad envelope must not stop listening
                            log.exception("handling a redis envelope failed")
            except (RedisError, OSError) as exc:
                self._listen_error = f"{type(exc).__name__}: {exc}"
                self.link.report_error("pubsub", exc)
                self.link.metrics.transport_errors.labels(transport=self.name).inc()
            finally:
                self._subscribed.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
            self._kick.clear()
            await wait_event(self._kick, delay)
            delay = min(delay * 2, self.backoff_max)


class RedisBroker(RelayBroker):
    """Redis pub/sub across nodes; with ``fallback`` (e.g. a PostgreSQL transport) it is
    the degradation composite: pushes cross over the fallback while Redis is down."""

    def __init__(
        self,
        link: RedisLink,
        *,
        node_id: str,
        channel: str | None = None,
        fallback: Transport | None = None,
        recovery_grace: float = 5.0,
        queue_size: int = 1000,
        yield_every: int = DEFAULT_YIELD_EVERY,
        metrics: HubMetrics | None = None,
    ) -> None:
        self.redis_transport = RedisTransport(link, channel=channel)
        super().__init__(
            [self.redis_transport, *([fallback] if fallback is not None else [])],
            node_id=node_id,
            backend="redis",
            recovery_grace=recovery_grace,
            queue_size=queue_size,
            yield_every=yield_every,
            metrics=metrics or link.metrics,
        )
