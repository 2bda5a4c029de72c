"""python-socketio peer for the fan-out (S3) and latency (S2) scenarios, under uvicorn.

Each client joins a room named after its user and the room ``all``. ``POST /send?user=U``
emits one event to U's room; ``POST /broadcast`` emits one event to ``all`` (the room
broadcast the bench compares with Clarion's fan-out). Payloads start with ``ts`` (epoch
seconds at emit) like Clarion's frames, so the same driver measures both."""

import sys
import time

import socketio
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins=[])
PAYLOAD = {"type": "notification.created", "title": "Bench", "message": "x" * 64}


@sio.event
async def connect(sid, environ, auth):
    user = (auth or {}).get("user") or "anon"
    await sio.enter_room(sid, user)
    await sio.enter_room(sid, "all")


async def send(request):
    await sio.emit("n", {"ts": time.time(), **PAYLOAD}, room=request.query_params["user"])
    return JSONResponse({"ok": True})


async def broadcast(request):
    await sio.emit("n", {"ts": time.time(), **PAYLOAD}, room="all")
    return JSONResponse({"ok": True})


async def health(request):
    return JSONResponse({"ok": True})


web = Starlette(
    routes=[
        Route("/send", send, methods=["POST"]),
        Route("/broadcast", broadcast, methods=["POST"]),
        Route("/healthz", health),
    ]
)
app = socketio.ASGIApp(sio, other_asgi_app=web)

if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        ws_per_message_deflate=False,
    )
