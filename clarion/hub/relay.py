"""Cross-node relaying: transports, the envelope they carry, and the relaying broker.

A :class:`Transport` moves opaque envelopes between nodes (Redis pub/sub, PostgreSQL
NOTIFY, an in-process bus). :class:`RelayBroker` delivers locally itself, then hands the
envelope to one transport — or, in failover mode, to a fallback while the primary is down
and to both for a short grace period after it returns. Receivers listen on every transport
and drop envelopes they already delivered (same origin node and sequence number) and their
own echoes, which is what makes the switch-over lossless and duplicate-free in the common
case. The edges are described in ``docs/realtime.md``.

Envelope: ``{"n": origin node, "i": sequence, "u": [user ids]}`` as JSON, ``\\n``, then the
message bytes untouched (one message for all those users). A batch (a different message
per user, :meth:`RelayBroker.publish_batch`) is ``{"n", "i", "b": [user ids], "l": [byte
length of each user's message]}``, ``\\n``, then the messages back to back. A batch names
its users ``b``, not ``u``, so that a node still running the older code drops it as
malformed rather than handing every user the whole concatenation.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Container, Sequence
from dataclasses import dataclass

import orjson

from clarion.errors import DependencyError
from clarion.hub.broker import DEFAULT_YIELD_EVERY, Broker, unique
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
    """One message for ``user_ids`` or, with ``lengths``, a batch: ``message`` is then the
    users' messages back to back, ``lengths[k]`` bytes for ``user_ids[k]``."""

    node: str
    seq: int
    user_ids: list[str]
    message: bytes
    lengths: list[int] | None = None

    def encode(self) -> bytes:
        if self.lengths is None:
            header = orjson.dumps({"n": self.node, "i": self.seq, "u": self.user_ids})
        else:
            header = orjson.dumps(
                {"n": self.node, "i": self.seq, "b": self.user_ids, "l": self.lengths}
            )
        return header + b"\n" + self.message

    @classmethod
    def batch(cls, node: str, seq: int, messages: Sequence[tuple[str, bytes]]) -> Envelope:
        return cls(
            node=node,
            seq=seq,
            user_ids=[u for u, _ in messages],
            message=b"".join(m for _, m in messages),
            lengths=[len(m) for _, m in messages],
        )

    @classmethod
    def decode(cls, data: bytes) -> Envelope:
        header, sep, message = data.partition(b"\n")
        if not sep:
            raise ValueError("envelope without header separator")
        h = orjson.loads(header)
        if "b" in h:
            users, lengths = list(h["b"]), [int(n) for n in h["l"]]
            if (
                len(users) != len(lengths)
                or sum(lengths) != len(message)
                or min(lengths, default=0) < 0
            ):
                raise ValueError("batch lengths do not match its messages")
            return cls(str(h["n"]), int(h["i"]), users, message, lengths)
        return cls(node=str(h["n"]), seq=int(h["i"]), user_ids=list(h["u"]), message=message)

    def messages(self) -> list[tuple[str, bytes]]:
        """``(user_id, message)`` pairs: the batch split up, or the one message per user."""
        if self.lengths is None:
            return [(u, self.message) for u in self.user_ids]
        out = []
        view = memoryview(self.message)
        at = 0
        for user, n in zip(self.user_ids, self.lengths, strict=True):
            out.append((user, bytes(view[at : at + n])))
            at += n
        return out


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
        yield_every: int = DEFAULT_YIELD_EVERY,
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
        # Our own envelopes come back from the transport; recognise them by their first
        # bytes (orjson keeps key order) without parsing a header of thousands of users.
        self._echo_prefix = orjson.dumps({"n": node_id})[:-1] + b","

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
        """Which transport cross-node pushes use right now: a name, or ``local``. Read
        from the transports' health now, not from the last publish: a node that has not
        published since Redis went down must not keep reporting ``redis``."""
        if not self.transports:
            return "local"
        primary = self.transports[0]
        if primary.healthy:
            return primary.name
        fallback = self.transports[1] if len(self.transports) > 1 else None
        return fallback.name if fallback is not None and fallback.healthy else "local"

    # --- publishing ---------------------------------------------------------------------
    async def publish_many(self, user_ids: Sequence[str], message: bytes) -> None:
        users = unique(user_ids)
        if not users:
            return
        await self.deliver_local(users, message)
        if not self.transports:
            self.metrics.messages_published.labels(transport="local").inc()
            return
        await self._relay(Envelope(self.node_id, next(self._seq), users, message).encode())

    async def publish_batch(
        self, messages: Sequence[tuple[str, bytes]], *, cross_node: Container[str] | None = None
    ) -> None:
        if not messages:
            return
        await self.deliver_local_batch(messages)
        if self.transports:
            if cross_node is not None:
                messages = [(u, m) for u, m in messages if u in cross_node]
            if messages:
                await self._relay(Envelope.batch(self.node_id, next(self._seq), messages).encode())
                return
        self.metrics.messages_published.labels(transport="local").inc()

    async def _relay(self, data: bytes) -> None:
        """Hand an encoded envelope to the transport(s) the route picks."""
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
        if data.startswith(self._echo_prefix):
            return  # our own, delivered locally at publish time
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
        if env.lengths is None:
            await self.deliver_local(env.user_ids, env.message)
        else:
            await self.deliver_local_batch(self._local_part(env))

    def _local_part(self, env: Envelope) -> list[tuple[str, bytes]]:
        """A batch's messages for users with a subscriber on this node only: with several
        processes per node each holds a share of the sockets, and slicing out the other
        processes' users' messages would be wasted copying."""
        assert env.lengths is not None
        out = []
        view = memoryview(env.message)
        at = 0
        subs = self._subs
        for user, n in zip(env.user_ids, env.lengths, strict=True):
            if user in subs:
                out.append((user, bytes(view[at : at + n])))
            at += n
        return out
