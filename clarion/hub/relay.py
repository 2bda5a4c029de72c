"""Cross-node relaying: transports, the envelope they carry, and the relaying broker.

A :class:`Transport` moves opaque envelopes between nodes (Redis pub/sub, PostgreSQL
NOTIFY, an in-process bus). :class:`RelayBroker` delivers locally itself, then hands the
envelope to one transport — or, in failover mode, to a fallback while the primary is down
and to both for a short grace period after it returns. Receivers listen on every transport
and drop envelopes they already delivered (same origin node and sequence number) and their
own echoes, which is what makes the switch-over lossless and duplicate-free in the common
case. The edges are described in ``docs/realtime.md``.

Envelope: ``{"n": origin node, "i": sequence, "u": [user ids]}`` as JSON, ``\\n``, then the
message bytes untouched.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import orjson

from clarion.errors import DependencyError
from clarion.hub.broker import Broker, unique
from clarion.hub.metrics import HubMetrics

log = logging.getLogger("clarion.hub.relay")

EnvelopeHandler = Callable[[bytes], Awaitable[None]]


class TransportError(DependencyError):
    """A transport could not send; the relay falls back or logs, never the publisher."""


class Transport(ABC):
    name: str = "abstract"

    @abstractmethod
    async def start(self, on_envelope: EnvelopeHandler) -> None:
        """Connect and start listening; must not raise when the server is down (retry)."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def send(self, data: bytes) -> None:
        """Send to every node; raise :class:`TransportError` on failure."""

    @property
    @abstractmethod
    def healthy(self) -> bool:
        """True when this node can send (receiving may still be reconnecting)."""

    @property
    @abstractmethod
    def reason(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Envelope:
    node: str
    seq: int
    user_ids: list[str]
    message: bytes

    def encode(self) -> bytes:
        header = orjson.dumps({"n": self.node, "i": self.seq, "u": self.user_ids})
        return header + b"\n" + self.message

    @classmethod
    def decode(cls, data: bytes) -> Envelope:
        header, sep, message = data.partition(b"\n")
        if not sep:
            raise ValueError("envelope without header separator")
        h = orjson.loads(header)
        return cls(node=str(h["n"]), seq=int(h["i"]), user_ids=list(h["u"]), message=message)


class RelayBroker(Broker):
    """Local fan-out plus zero, one or two transports (primary, then fallback)."""

    def __init__(
        self,
        transports: Sequence[Transport],
        *,
        node_id: str,
        backend: str,
        recovery_grace: float = 5.0,
        dedup_size: int = 20_000,
        queue_size: int = 1000,
        yield_every: int = 500,
        metrics: HubMetrics | None = None,
    ) -> None:
        super().__init__(queue_size=queue_size, yield_every=yield_every, metrics=metrics)
        if len(transports) > 2:
            raise ValueError("at most a primary and a fallback transport")
        self.transports = list(transports)
        self.node_id = node_id
        self.backend = backend
        self.recovery_grace = recovery_grace
        self._seq = itertools.count(1)
        self._seen: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._dedup_size = dedup_size
        self._primary_up = True
        self._recovered_at = float("-inf")
        self._active = ""

    # --- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        for t in self.transports:
            await t.start(self._on_envelope)
        self._note_active(self._route()[0] if self.transports else [])

    async def close(self) -> None:
        for t in self.transports:
            with contextlib.suppress(Exception):
                await t.close()
        await super().close()

    # --- health -------------------------------------------------------------------------
    @property
    def healthy(self) -> bool:
        return not self.transports or self.transports[0].healthy

    @property
    def reason(self) -> str | None:
        if self.healthy:
            return None
        primary = self.transports[0]
        if len(self.transports) > 1:
            fb = self.transports[1]
            via = fb.name if fb.healthy else f"nothing ({fb.name}: {fb.reason})"
            return f"{primary.name} down ({primary.reason}); cross-node pushes via {via}"
        return f"{primary.name} down ({primary.reason}); pushes reach this node only"

    @property
    def active_transport(self) -> str:
        """Which transport cross-node pushes use right now: a name, or ``local``."""
        return self._active or "local"

    # --- publishing ---------------------------------------------------------------------
    async def publish_many(self, user_ids: Sequence[str], message: bytes) -> None:
        users = unique(user_ids)
        if not users:
            return
        await self.deliver_local(users, message)
        if not self.transports:
            self.metrics.messages_published.labels(transport="local").inc()
            return
        data = Envelope(self.node_id, next(self._seq), users, message).encode()
        targets, fallback = self._route()
        self._note_active(targets)
        sent = False
        for t in targets:
            sent = await self._send(t, data) or sent
        if not sent and fallback is not None and fallback.healthy:
            sent = await self._send(fallback, data)
        if not sent:
            self.metrics.messages_published.labels(transport="local").inc()

    def _route(self) -> tuple[list[Transport], Transport | None]:
        """(transports to send on, one to try if they all fail)."""
        primary = self.transports[0]
        fallback = self.transports[1] if len(self.transports) > 1 else None
        now = time.monotonic()
        if primary.healthy and not self._primary_up:
            self._recovered_at = now  # other nodes may not have resubscribed yet
        self._primary_up = primary.healthy
        if not primary.healthy:
            # An unreachable fallback would cost its connect timeout on every publish.
            return ([fallback] if fallback is not None and fallback.healthy else []), None
        if fallback is not None and now - self._recovered_at < self.recovery_grace:
            return [primary, fallback], None
        return [primary], fallback

    async def _send(self, t: Transport, data: bytes) -> bool:
        try:
            await t.send(data)
        except TransportError as exc:
            self.metrics.transport_errors.labels(transport=t.name).inc()
            log.warning("publish over %s failed: %s", t.name, exc)
            return False
        self.metrics.messages_published.labels(transport=t.name).inc()
        return True

    def _note_active(self, targets: Sequence[Transport]) -> None:
        name = targets[0].name if targets else "local"
        if name != self._active:
            self._active = name
            self.metrics.set_broker_in_use(name)

    # --- receiving ----------------------------------------------------------------------
    async def _on_envelope(self, data: bytes) -> None:
        try:
            env = Envelope.decode(data)
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
            log.warning("dropping malformed envelope (%d bytes)", len(data))
            return
        if env.node == self.node_id:
            return  # delivered locally at publish time
        key = (env.node, env.seq)
        if key in self._seen:
            return  # already came in over the other transport
        self._seen[key] = None
        if len(self._seen) > self._dedup_size:
            self._seen.popitem(last=False)
        await self.deliver_local(env.user_ids, env.message)
