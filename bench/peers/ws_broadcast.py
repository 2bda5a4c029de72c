"""The bare ``websockets`` peer of the fan-out bench (bench/fanout_peers.py): clients
connect, and ``GET /broadcast?size=N`` sends one text frame of N bytes (starting
``{"ts":<epoch s>``, like Clarion's frames) to every open connection with the library's
own ``websockets.broadcast()``. ``GET /healthz`` answers once listening. The same protocol
as ``node_ws/server.js``, so one driver (``bench/wsdriver.py``, protocol ``plain``)
measures both.

    python bench/peers/ws_broadcast.py PORT      (binds 127.0.0.1 only)
"""

import asyncio
import json
import signal
import sys
import time
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.http11 import Request, Response


def frame(size: int) -> str:
    head = f'{{"ts":{time.time()!r},"type":"notification.created","pad":"'
    return head + "x" * max(0, size - len(head) - 2) + '"}'


async def handler(ws: ServerConnection) -> None:
    await ws.wait_closed()


def process_request(connection: ServerConnection, request: Request) -> Response | None:
    url = urlsplit(request.path)
    if url.path == "/healthz":
        return connection.respond(HTTPStatus.OK, "ok\n")
    if url.path == "/broadcast":
        size = int(parse_qs(url.query).get("size", ["600"])[0])
        # ``connections`` holds only open WebSockets, not this HTTP request.
        conns = connection.server.connections
        broadcast(conns, frame(size))
        return connection.respond(HTTPStatus.OK, json.dumps({"sent": len(conns)}) + "\n")
    return None  # a WebSocket handshake


async def main(port: int) -> None:
    # No compression (every server in the bench sends plain frames) and no keepalive pings:
    # the rounds measure the broadcast alone.
    async with serve(
        handler,
        "127.0.0.1",
        port,
        process_request=process_request,
        compression=None,
        ping_interval=None,
    ):
        stop = asyncio.get_running_loop().create_future()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
        await stop


if __name__ == "__main__":
    try:  # the event loop Clarion's server runs on, when installed (uvicorn[standard] has it)
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(int(sys.argv[1])))
