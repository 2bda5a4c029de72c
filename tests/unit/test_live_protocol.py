"""api.live_protocol.ReceiveQueue: the receive queue of every live socket."""

from __future__ import annotations

import asyncio

import pytest

from clarion.api.live_protocol import ReceiveQueue


async def test_messages_come_out_in_order_and_a_waiting_reader_wakes() -> None:
    q = ReceiveQueue()
    assert q.empty() and q.qsize() == 0
    q.put_nowait(1)
    q.put_nowait(2)
    assert (await q.get(), q.qsize(), await q.get(), q.empty()) == (1, 1, 2, True)
    reader = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    assert not reader.done()
    q.put_nowait(3)
    q.put_nowait(4)
    assert await reader == 3
    assert await q.get() == 4


async def test_a_cancelled_reader_loses_nothing() -> None:
    q = ReceiveQueue()
    reader = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    q.put_nowait("kept")
    assert await asyncio.wait_for(q.get(), 1) == "kept"
