"""The process's one Redis client, and the truth about whether Redis is usable.

Every hub component (broker, counts, rate limits, sessions) shares this link: one
connection pool, one health state. Components check :attr:`RedisLink.healthy` before
talking to Redis, so an outage costs one failed ping per interval instead of a connect
timeout on every request, and they call :meth:`RedisLink.report_error` when a command
fails so the state flips at once, without waiting for the next ping.

A frozen Redis (alive, accepting connections, answering nothing: a ``DEBUG SLEEP``, a
stopped process, a saturated host) is the same outage as a dead one: every command is
bounded by ``CLARION_REDIS_TIMEOUT_SECONDS`` (sub-second by default) and a timeout is not
retried, so the first one marks Redis down and everything falls back. Coming back takes
:data:`RECOVER_AFTER_PINGS` pings in a row, so a Redis that answers one ping in three does
not make the status flap between ``ok`` and ``degraded``.

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
from clarion.hub.tasks import stop_task, wait_event

log = logging.getLogger("clarion.hub.redis")

#: Called with the new state (True = up) each time health flips.
HealthCallback = Callable[[bool], Awaitable[None] | None]

DEFAULT_PREFIX = "clarion"
#: Default bound of one Redis command or connect (``CLARION_REDIS_TIMEOUT_SECONDS``).
DEFAULT_TIMEOUT = 0.5
#: Successful pings in a row before a Redis that was down counts as up again.
RECOVER_AFTER_PINGS = 3


class RedisLink:
    """One redis-py asyncio client with a pool, timeouts, retries and a health monitor."""

    configured = True

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        socket_timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float | None = None,
        max_connections: int = 64,
        ping_interval: float = 1.0,
        retries: int = 1,
        recover_after: int = RECOVER_AFTER_PINGS,
        metrics: HubMetrics | None = None,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.ping_interval = ping_interval
        self.timeout = socket_timeout
        self.recover_after = max(1, recover_after)
        self.metrics = metrics or hub_metrics()
        # The health monitor, not each command, is what waits for Redis to come back: a
        # command fails fast so its caller falls back. A broken connection (a restarted
        # Redis) is retried once on a fresh one; a TIMEOUT is not retried: a frozen Redis
        # would only make the caller wait twice as long for the same answer.
        self.client = Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout or socket_timeout,
            max_connections=max_connections,
            retry=Retry(
                ExponentialBackoff(cap=0.5, base=0.05),
                retries,
                supported_errors=(RedisConnectionError,),
            ),
            retry_on_error=[RedisConnectionError],
            health_check_interval=15,
        )
        self._healthy = False
        self._reason: str | None = "not started"
        self._good_pings = 0
        self._notify_tasks: set[asyncio.Task[None]] = set()
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
        await wait_event(self._up, within)
        return self._healthy

    async def wait_unhealthy(self, within: float) -> bool:
        await wait_event(self._down, within)
        return not self._healthy

    def report_error(self, component: str, exc: BaseException) -> None:
        """A component saw Redis fail: count it and re-check health now, not at next tick.

        Only connection-level errors flip health; a bad command (``ResponseError``) says
        nothing about availability.
        """
        self.metrics.redis_errors.labels(component=component).inc()
        if not isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError):
            log.warning("redis error in %s: %r", component, exc)
            return
        # Down at once: the next caller falls back instead of waiting out its own
        # timeout. Logged once, by the flip; the monitor decides when it is back.
        if self._healthy:
            self._flip(False, f"redis unreachable: {component}: {type(exc).__name__}: {exc}")
        self._wake.set()

    # --- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Ping once (so callers know the state right away), then monitor in background."""
        await self._check()
        self._task = asyncio.create_task(self._monitor(), name="clarion-redis-health")

    async def close(self) -> None:
        await stop_task(self._task)
        self._task = None
        for task in list(self._notify_tasks):
            await stop_task(task)
        # Disconnecting is bounded too: a frozen Redis must not hold a shutdown.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(max(1.0, 2 * self.timeout)):
                await self.client.aclose()
        self._healthy = False
        self._reason = "closed"

    async def _monitor(self) -> None:
        while True:
            await wait_event(self._wake, self.ping_interval)
            self._wake.clear()
            await self._check()

    async def _check(self) -> None:
        try:
            # Bounded here too: a ping queued behind a connect to a frozen Redis must not
            # hold the monitor (and so the recovery) longer than a command would.
            async with asyncio.timeout(self.timeout * 4):
                await self.client.ping()
        except (RedisError, OSError, TimeoutError) as exc:
            self._good_pings = 0
            await self._set(False, f"redis unreachable: {type(exc).__name__}: {exc}")
            return
        self._good_pings += 1
        starting = self._reason == "not started"
        if self._healthy or starting or self._good_pings >= self.recover_after:
            await self._set(True, None)
        else:
            self._reason = (
                f"redis answering again, confirming ({self._good_pings}/{self.recover_after})"
            )

    async def _set(self, up: bool, reason: str | None) -> None:
        if up == self._healthy:
            if not up:
                self._reason = reason
            return
        self._flip(up, reason)
        if self._notify_tasks:  # a flip made by report_error: its callbacks first
            await asyncio.gather(*list(self._notify_tasks), return_exceptions=True)
        await self._notify(up)

    def _flip(self, up: bool, reason: str | None) -> None:
        """Change the state now (no await), log the flip once; callbacks are awaited by
        :meth:`_set`, or run in a task when the flip comes from :meth:`report_error`."""
        self._reason = reason
        self._healthy = up
        (self._up if up else self._down).set()
        (self._down if up else self._up).clear()
        if up:
            log.info("redis is up (%s)", self.url_redacted)
            return
        self._good_pings = 0
        log.warning("redis is down: %s (falling back until it answers again)", reason)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._task is None:
            return  # not started: _set notifies
        task = loop.create_task(self._notify(False), name="clarion-redis-down")
        self._notify_tasks.add(task)
        task.add_done_callback(self._notify_tasks.discard)

    async def _notify(self, up: bool) -> None:
        if up != self._healthy:
            return  # flipped back meanwhile: that flip notifies
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
    return RedisLink(
        settings.redis_url,
        prefix=prefix,
        socket_timeout=settings.redis_timeout_seconds,
        metrics=metrics,
    )


def make_node_id(port: int | None = None) -> str:
    """``hostname:pid:port`` (or a random suffix without a port): unique per process."""
    import os
    import socket

    tail = str(port) if port is not None else uuid.uuid4().hex[:8]
    return f"{socket.gethostname()}:{os.getpid()}:{tail}"
