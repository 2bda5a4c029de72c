"""In-process broker: one node, or several "nodes" sharing a :class:`MemoryBus` in one
process (tests, and the contract suite's two-node checks). Nothing leaves the process."""

from __future__ import annotations

from clarion.hub.broker import DEFAULT_YIELD_EVERY
from clarion.hub.metrics import HubMetrics
from clarion.hub.relay import EnvelopeHandler, RelayBroker, Transport, TransportError


class MemoryBus:
    """What Redis is to real nodes: every attached transport receives every envelope.

    ``down = True`` makes it refuse sends and report unhealthy, to exercise failover.
    """

    def __init__(self) -> None:
        self.handlers: list[EnvelopeHandler] = []
        self.down = False


class MemoryTransport(Transport):
    name = "memory"

    def __init__(self, bus: MemoryBus) -> None:
        self.bus = bus
        self._handler: EnvelopeHandler | None = None

    async def start(self, on_envelope: EnvelopeHandler) -> None:
        self._handler = on_envelope
        self.bus.handlers.append(on_envelope)

    async def close(self) -> None:
        if self._handler is not None and self._handler in self.bus.handlers:
            self.bus.handlers.remove(self._handler)
        self._handler = None

    async def send(self, data: bytes) -> None:
        if self.bus.down:
            raise TransportError("memory bus is down")
        # Inline and in order, like a single pub/sub connection would deliver.
        for handler in list(self.bus.handlers):
            if handler is not self._handler:
                await handler(data)

    @property
    def healthy(self) -> bool:
        return not self.bus.down

    @property
    def reason(self) -> str | None:
        return "memory bus is down" if self.bus.down else None


class MemoryBroker(RelayBroker):
    """One process; pass a shared ``bus`` to make several brokers act as nodes."""

    def __init__(
        self,
        *,
        bus: MemoryBus | None = None,
        node_id: str = "memory",
        queue_size: int = 1000,
        yield_every: int = DEFAULT_YIELD_EVERY,
        metrics: HubMetrics | None = None,
    ) -> None:
        super().__init__(
            [MemoryTransport(bus)] if bus is not None else [],
            node_id=node_id,
            backend="memory",
            queue_size=queue_size,
            yield_every=yield_every,
            metrics=metrics,
        )
