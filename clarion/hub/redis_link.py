"""The process's one Redis client, and the truth about whether Redis is usable.

Every hub component (broker, counts, rate limits, sessions) shares this link: one
connection pool, one health state. Components check :attr:`RedisLink.healthy` before
talking to Redis, so an outage costs one failed ping per interval instead of a connect
timeout on every request, and they call :meth:`RedisLink.report_error` when a command
fails so the state flips without waiting for the next ping.

``redis_url=None`` means no Redis at all: :func:`build_redis_link` returns ``None`` and
every component takes its in-process path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from clarion.config import Settings
from clarion.hub.metrics import HubMetrics, hub_metrics

log = logging.getLogger("clarion.hub.redis")

#: Called with the new state (True = up) each time health flips.
HealthCallback = Callable[[bool], Awaitable[None] | None]

DEFAULT_PREFIX = "clarion"


class RedisLink:
    """One redis-py asyncio client with a pool, timeouts, retries and a health monitor."""

    configured = True

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        socket_timeout: float = 2.0,
        connect_timeout: float = 1.0,
        max_connections: int = 64,
        ping_interval: float = 1.0,
        retries: int = 1,
        metrics: HubMetrics | None = None,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.ping_interval = ping_interval
        self.metrics = metrics or hub_metrics()
        # Few retries with short backoff: the health monitor, not each command, is what
        # waits for Redis to come back; a command must fail fast so callers fall back.
        self.client = Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout,
            max_connections=max_connections,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
            health_check_interval=15,
        )
        self._healthy = False
        self._reason: str | None = "not started"
        self._callbacks: list[HealthCallback] = []
        self._up = asyncio.Event()
        self._down = asyncio.Event()
        self._down.set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # --- state --------------------------------------------------------------------------
    @property
    def healthy(self) -> bool:
        return self._healthy

    @property
    def reason(self) -> str | None:
        """Why Redis is not usable (``None`` when healthy)."""
        return None if self._healthy else self._reason

    def key(self, *parts: str) -> str:
        """A key or channel name under this deployment's prefix: ``prefix:part:part``."""
        return ":".join((self.prefix, *parts))

    def on_change(self, callback: HealthCallback) -> None:
        """Call ``callback(up)`` on each flip; used to resubscribe and resync after outages."""
        self._callbacks.append(callback)

    async def wait_healthy(self, within: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._up.wait(), within)
        return self._healthy

    async def wait_unhealthy(self, within: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._down.wait(), within)
        return not self._healthy

    def report_error(self, component: str, exc: BaseException) -> None:
        """A component saw Redis fail: count it and re-check health now, not at next tick.

        Only connection-level errors flip health; a bad command (``ResponseError``) says
        nothing about availability.
        """
        self.metrics.redis_errors.labels(component=component).inc()
        log.warning("redis error in %s: %r", component, exc)
        if isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError):
            self._wake.set()

    # --- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Ping once (so callers know the state right away), then monitor in background."""
        await self._check()
        self._task = asyncio.create_task(self._monitor(), name="clarion-redis-health")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.client.aclose()
        self._healthy = False
        self._reason = "closed"

    async def _monitor(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.ping_interval)
            self._wake.clear()
            await self._check()

    async def _check(self) -> None:
        try:
            await self.client.ping()
        except (RedisError, OSError) as exc:
            await self._set(False, f"redis unreachable: {type(exc).__name__}: {exc}")
        else:
            await self._set(True, None)

    async def _set(self, up: bool, reason: str | None) -> None:
        self._reason = reason
        if up == self._healthy:
            return
        self._healthy = up
        (self._up if up else self._down).set()
        (self._down if up else self._up).clear()
        if up:
            log.info("redis is up (%s)", self.url_redacted)
        else:
            log.warning("redis is down: %s", reason)
        for cb in list(self._callbacks):
            try:
                result = cb(up)
                if result is not None:
                    await result
            except Exception:  # a broken listener must not stop health tracking
                log.exception("redis health callback failed")

    @property
    def url_redacted(self) -> str:
        """The URL without its password, for logs and status pages."""
        if "@" not in self.url:
            return self.url
        scheme, rest = self.url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"

    def __repr__(self) -> str:
        return f"RedisLink({self.url_redacted!r}, healthy={self._healthy})"


def build_redis_link(
    settings: Settings, *, prefix: str = DEFAULT_PREFIX, metrics: HubMetrics | None = None
) -> RedisLink | None:
    """The link for ``settings.redis_url``; ``None`` when Redis is not configured."""
    if not settings.redis_url:
        return None
    return RedisLink(settings.redis_url, prefix=prefix, metrics=metrics)


def make_node_id(port: int | None = None) -> str:
    """``hostname:pid:port`` (or a random suffix without a port): unique per process."""
    import os
    import socket

    tail = str(port) if port is not None else uuid.uuid4().hex[:8]
    return f"{socket.gethostname()}:{os.getpid()}:{tail}"
