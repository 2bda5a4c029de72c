"""A publish cancelled while its NOTIFY is on the wire does not break the next one.

The cancelled statement leaves the publishing connection mid-operation; a later send on it
failed with asyncpg's "another operation is in progress" (seen as a traceback after a
database outage, when a send's caller gave up). The transport drops that connection."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

import pytest

from clarion.hub.postgres import PostgresTransport

pytestmark = pytest.mark.postgres


class HeldAnswers:
    """A TCP proxy to PostgreSQL that can hold the server's answers on the connections open
    now (``hold()``); connections made later flow."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.gates: list[asyncio.Event] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    def hold(self) -> None:
        for gate in self.gates:
            gate.clear()

    def release(self) -> None:
        for gate in self.gates:
            gate.set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        gate = asyncio.Event()
        gate.set()
        self.gates.append(gate)

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter, gated: bool) -> None:
            with contextlib.suppress(OSError):
                while data := await r.read(65536):
                    if gated:
                        await gate.wait()
                    w.write(data)
                    await w.drain()
            w.close()

        await asyncio.gather(pipe(reader, up_writer, False), pipe(up_reader, writer, True))


async def test_a_cancelled_publish_leaves_the_next_one_working(pg_dsn: str, tag: str) -> None:
    url = urlsplit(pg_dsn)
    proxy = HeldAnswers(url.hostname or "127.0.0.1", url.port or 5432)
    await proxy.start()
    dsn = pg_dsn.replace(f"{url.hostname}:{url.port or 5432}", f"127.0.0.1:{proxy.port}", 1)
    transport = PostgresTransport(dsn, channel=f"clarion_t_{tag}", timeout=5.0)
    try:
        await transport.send(b"first")  # connects, and works
        proxy.hold()  # the server's answer to the next NOTIFY is held back
        pending = asyncio.create_task(transport.send(b"cancelled"))
        await asyncio.sleep(0.3)
        assert not pending.done()
        pending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pending
        async with asyncio.timeout(10):
            # While the interrupted statement's answer is still held: a fresh connection.
            await transport.send(b"after")
    finally:
        proxy.release()
        await transport.close()
        await proxy.close()
