"""``api.frame_writer.write_at_once`` on a real uvicorn server and a real WebSocket client: frames
written in one socket write arrive as separate messages, in order; where uvicorn's own
``send`` would not write at once, it declines and the ASGI path is used."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
import websockets

from clarion.api.frame_writer import write_at_once


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[Any]]]:
    verdicts: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()  # websocket.connect
        verdicts.append(("before accept", write_at_once(send, [b"x", b"y"])))
        await send({"type": "websocket.accept"})
        frames = [b'{"n":%d}' % i for i in range(50)] + ['{"t":"é"}'.encode()]
        verdicts.append(("open", write_at_once(send, frames)))
        verdicts.append(("one frame", write_at_once(send, [b'{"n":"single"}'])))
        await send({"type": "websocket.send", "text": '{"n":"asgi"}'})
        message = await receive()
        verdicts.append(("client said", message.get("text")))
        await send({"type": "websocket.close", "code": 1000})
        verdicts.append(("after close", write_at_once(send, [b"x", b"y"])))

    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve())
    while not srv.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.01)
    try:
        yield f"ws://127.0.0.1:{port}/", verdicts
    finally:
        srv.should_exit = True
        await asyncio.wait_for(task, 10)


async def test_frames_arrive_whole_and_in_order(server: tuple[str, list[Any]]) -> None:
    url, verdicts = server
    async with websockets.connect(url) as ws:
        got = [await asyncio.wait_for(ws.recv(), 5) for _ in range(51)]
        assert got == [f'{{"n":{i}}}' for i in range(50)] + ['{"t":"é"}']
        assert await asyncio.wait_for(ws.recv(), 5) == '{"n":"asgi"}'
        await ws.send("bye")
        with pytest.raises(websockets.ConnectionClosedOK):
            await asyncio.wait_for(ws.recv(), 5)
    for _ in range(100):  # the app finishes after the client saw the close
        if len(verdicts) == 5:
            break
        await asyncio.sleep(0.02)
    assert verdicts == [
        ("before accept", False),
        ("open", True),
        ("one frame", False),  # a single frame gains nothing: the ASGI send
        ("client said", "bye"),
        ("after close", False),
    ]
