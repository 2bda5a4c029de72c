"""Live delivery through real ``clarion serve`` processes and a real WebSocket client:
pushes after commit, counts from another device, resume by cursor, isolation, close codes,
a slow consumer, and two nodes sharing PostgreSQL (with and without Redis)."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import Server, clarion_env, run_cli, start_server

SECRET = "e2e-secret-" + "s" * 40


def ws_url(server: Server, token: str | None, cursor: int | None = None) -> str:
    url = server.url.replace("http://", "ws://") + "/api/v1/ws"
    params = []
    if token is not None:
        params.append(f"token={token}")
    if cursor is not None:
        params.append(f"cursor={cursor}")
    return url + ("?" + "&".join(params) if params else "")


def token_for(user: str, ttl: float = 600, secret: str = SECRET) -> str:
    now = time.time()
    claims = {"sub": user, "typ": "user", "iss": "clarion", "iat": int(now), "exp": now + ttl}
    return jwt.encode(claims, secret, algorithm="HS256")


async def recv(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    while True:
        msg = orjson.loads(await asyncio.wait_for(ws.recv(), timeout))
        if msg["type"] != "ping":
            return dict(msg)


async def recv_until(
    ws: ClientConnection, kind: str, timeout: float = 5.0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        msg = await recv(ws, max(0.05, deadline - time.monotonic()))
        seen.append(msg)
        if msg["type"] == kind:
            return msg, seen


def names(*bases: str) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    return [f"{b}-{tag}" for b in bases]


def send(server: Server, **body: Any) -> list[int]:
    body.setdefault("type", "follow")
    body.setdefault("title", "hello")
    r = httpx.post(
        f"{server.url}/api/v1/notifications",
        json=body,
        headers={"Authorization": f"Bearer {server.key}"},
        timeout=10,
    )
    assert r.status_code == 202, r.text
    return list(r.json()["ids"])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module (starting one takes seconds); tests use their own users."""
    tmp_path = tmp_path_factory.mktemp("live")
    env = clarion_env(
        tmp_path,
        CLARION_SECRET_KEY=SECRET,
        CLARION_WS_QUEUE_SIZE="40",
        CLARION_EMBEDDED_WORKER="false",
    )
    server = start_server(tmp_path, env)
    try:
        yield server
    finally:
        server.stop()


async def test_push_counts_and_resume(live: Server) -> None:
    ana, bo = names("ana", "bo")
    async with websockets.connect(ws_url(live, token_for(ana))) as phone:
        first = await recv(phone)
        assert first == {**first, "type": "unread_count", "unread": 0, "unseen": 0}
        (nid,) = send(live, user_id=ana, title="Bo followed you")
        created = await recv(phone)
        assert created["type"] == "notification.created"
        assert (
            created["notification"]["id"] == nid
            and created["notification"]["title"] == "Bo followed you"
        )
        assert (await recv(phone))["unread"] == 1

        # another device of ana's reads it over its own socket
        async with websockets.connect(ws_url(live, token_for(ana))) as laptop:
            await recv(laptop)  # its initial count
            await laptop.send(orjson.dumps({"type": "read", "id": nid}).decode())
            ack, _ = await recv_until(laptop, "ack")
            assert ack["id"] == nid
        updated, _ = await recv_until(phone, "notification.updated")
        assert updated["change"] == "read" and updated["notification"]["status"] == "read"
        count, _ = await recv_until(phone, "unread_count")
        assert count["unread"] == 0

        # bad client messages get an error frame, not a closed socket
        await phone.send("not json")
        assert (await recv(phone))["code"] == "malformed_json"
        await phone.send(orjson.dumps({"type": "read", "id": 999999}).decode())
        assert (await recv(phone))["code"] == "not_found"

    # missed while offline: replayed oldest first, once each, then live again
    missed = send(live, user_id=ana, title="m1") + send(live, user_id=ana, title="m2")
    missed += send(live, user_ids=[ana, bo], title="m3")[:1]
    async with websockets.connect(ws_url(live, token_for(ana), cursor=nid)) as phone:
        replay = [await recv(phone) for _ in range(3)]
        assert [m["notification"]["id"] for m in replay] == missed
        assert all(m["type"] == "notification.created" for m in replay)
        assert (await recv(phone))["type"] == "unread_count"
        (later,) = send(live, user_id=ana, title="live")
        nxt = await recv(phone)
        assert nxt["type"] == "notification.created" and nxt["notification"]["id"] == later


async def test_users_only_get_their_own(live: Server) -> None:
    ana_id, bo_id = names("ana", "bo")
    async with (
        websockets.connect(ws_url(live, token_for(ana_id))) as ana,
        websockets.connect(ws_url(live, token_for(bo_id))) as bo,
    ):
        await recv(ana)
        await recv(bo)
        send(live, user_id=bo_id, title="for bo only")
        (mine,) = send(live, user_id=ana_id, title="for ana")
        got = await recv(ana)
        assert got["notification"]["id"] == mine  # bo's came first and never reached ana
        assert (await recv(bo))["notification"]["title"] == "for bo only"
        # ana cannot act on bo's notifications through her socket
        bos = httpx.get(
            f"{live.url}/api/v1/notifications?user_id={bo_id}",
            headers={"Authorization": f"Bearer {live.key}"},
        ).json()["items"][0]
        await ana.send(orjson.dumps({"type": "read", "id": bos["id"]}).decode())
        err, _ = await recv_until(ana, "error")
        assert err["code"] == "not_found"


async def test_one_send_to_many_reaches_each_socket_with_its_own_frames(live: Server) -> None:
    """A multi-user send is one hub batch: each socket gets its user's notification and
    counts, never another user's, and a socket whose user was not listed gets nothing."""
    ana_id, bo_id, cy_id, dee_id = names("ana", "bo", "cy", "dee")
    async with (
        websockets.connect(ws_url(live, token_for(ana_id))) as ana,
        websockets.connect(ws_url(live, token_for(bo_id))) as bo,
        websockets.connect(ws_url(live, token_for(cy_id))) as cy,
    ):
        for ws in (ana, bo, cy):
            await recv(ws)  # the counts on connect
        ids = send(live, user_ids=[ana_id, bo_id, dee_id], title="to several")
        stored = httpx.get(
            f"{live.url}/api/v1/notifications?user_id={ana_id}",
            headers={"Authorization": f"Bearer {live.key}"},
        ).json()["items"]
        for ws, user in ((ana, ana_id), (bo, bo_id)):
            created = await recv(ws)
            assert created["type"] == "notification.created"
            assert created["notification"]["user_id"] == user
            assert created["id"] in ids and created["notification"]["title"] == "to several"
            counts = await recv(ws)
            assert counts["type"] == "unread_count"
            assert (counts["user_id"], counts["unread"]) == (user, 1)
        assert stored[0]["id"] in ids
        with pytest.raises(TimeoutError):
            await recv(cy, timeout=0.5)
        for ws in (ana, bo):
            with pytest.raises(TimeoutError):
                await recv(ws, timeout=0.3)


def live_writes(server: Server) -> tuple[float, float]:
    """(frames written to live sockets, socket writes that carried them) from /metrics."""
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    values = {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith(("clarion_ws_frames_sent_total", "clarion_ws_socket_writes_total"))
    }
    return values["clarion_ws_frames_sent_total"], values["clarion_ws_socket_writes_total"]


async def test_a_delivery_goes_out_in_one_socket_write(live: Server) -> None:
    """The notification and its counts are two WebSocket messages, written to the socket
    at once (api/frame_writer.write_at_once), through the real server."""
    (ana_id,) = names("ana")
    async with websockets.connect(ws_url(live, token_for(ana_id))) as ana:
        await recv(ana)
        frames0, writes0 = live_writes(live)
        send(live, user_id=ana_id, title="one write")
        assert (await recv(ana))["type"] == "notification.created"
        assert (await recv(ana))["type"] == "unread_count"
        frames, writes = live_writes(live)
    assert (frames - frames0, writes - writes0) == (2, 1)


@pytest.mark.parametrize(
    ("token", "code"),
    [(None, 4001), ("garbage", 4001), ("expired", 4002), ("api_key", 4003)],
)
async def test_refused_before_any_data(live: Server, token: str | None, code: int) -> None:
    value = {"expired": token_for("ana", ttl=-10), "api_key": live.key}.get(token or "", token)
    async with websockets.connect(ws_url(live, value)) as ws:
        if token is None:
            await ws.send('{"type": "auth"}')
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 15)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == code


async def test_token_in_first_message_and_expiry_mid_session(live: Server) -> None:
    (ana,) = names("ana")
    async with websockets.connect(ws_url(live, None)) as ws:
        await ws.send(orjson.dumps({"type": "auth", "token": token_for(ana, ttl=2)}).decode())
        assert (await recv(ws))["type"] == "unread_count"
        start = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4002
        assert time.monotonic() - start < 6


async def test_slow_consumer_is_cut_and_others_keep_pace(live: Server) -> None:
    """The stalled client stops reading (its library buffers one frame); with big frames
    the TCP buffers fill, then its bounded server queue (40 here) overflows."""
    slow_id, fast_id = names("slow", "fast")
    blob = "x" * 60_000
    # A small, fixed receive buffer (no autotuning up to 32 MiB) so the stall shows fast.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.connect(("127.0.0.1", int(live.url.rsplit(":", 1)[1])))
    async with (
        websockets.connect(
            ws_url(live, token_for(slow_id)),
            sock=sock,
            max_queue=1,
            compression=None,
            max_size=2**22,
        ) as slow,
        websockets.connect(ws_url(live, token_for(fast_id)), max_size=2**22) as fast,
    ):
        await recv(fast)
        latencies = []
        for i in range(8):
            for _ in range(20):
                send(live, user_id=slow_id, title="big", data={"b": blob})
            t0 = time.monotonic()
            send(live, user_id=fast_id, title=f"ping {i}")
            got, _ = await recv_until(fast, "notification.created", timeout=5)
            latencies.append(time.monotonic() - t0)
            assert got["notification"]["title"] == f"ping {i}"
        assert max(latencies) < 1.0, latencies
        deadline = time.monotonic() + 10
        while "clarion_ws_slow_consumer_disconnects_total 1.0" not in (
            metrics := httpx.get(f"{live.url}/metrics").text
        ):
            assert time.monotonic() < deadline, [
                line for line in metrics.splitlines() if "clarion_ws" in line or "push" in line
            ]
            await asyncio.sleep(0.2)
        with pytest.raises(ConnectionClosed) as closed:
            while True:  # what was in flight, then the close frame
                await asyncio.wait_for(slow.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4008
    assert "clarion_push_latency_seconds_count" in metrics


async def test_server_sent_events(live: Server) -> None:
    (ana,) = names("ana")
    (old,) = send(live, user_id=ana, title="before")
    headers = {"Authorization": f"Bearer {token_for(ana)}", "Last-Event-ID": str(old - 1)}
    async with (
        httpx.AsyncClient(base_url=live.url, timeout=10) as client,
        client.stream("GET", "/api/v1/notifications/stream", headers=headers) as r,
    ):
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = r.aiter_lines()

        async def next_event() -> dict[str, str]:
            event: dict[str, str] = {}
            async for line in lines:
                if not line:
                    if "data" in event:
                        return event
                    continue
                key, _, value = line.partition(": ")
                event[key] = value
            raise AssertionError("stream ended")

        first = await asyncio.wait_for(next_event(), 5)
        assert first["event"] == "notification.created" and first["id"] == str(old)
        assert (await asyncio.wait_for(next_event(), 5))["event"] == "unread_count"
        (new,) = send(live, user_id=ana, title="live")
        ev = await asyncio.wait_for(next_event(), 5)
        assert ev["event"] == "notification.created" and orjson.loads(ev["data"])["id"] == new
    r = httpx.get(
        f"{live.url}/api/v1/notifications/stream", headers={"Authorization": f"Bearer {live.key}"}
    )
    assert r.status_code == 403
    assert httpx.get(f"{live.url}/api/v1/notifications/stream").status_code == 401


def _two_nodes(tmp_path: Path, pg_url: str, **extra: str) -> tuple[Server, Server]:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    env = clarion_env(
        tmp_path,
        CLARION_DATABASE_URL=pg_url,
        CLARION_SECRET_KEY=SECRET,
        CLARION_REDIS_PREFIX=prefix,
        CLARION_EMBEDDED_WORKER="false",
        **extra,
    )
    key = run_cli(env, "api-key", "create", "--name", "nodes", cwd=tmp_path).strip()
    a = start_server(tmp_path, env, key=key)
    try:
        b = start_server(tmp_path, env, key=key)
    except Exception:
        a.stop()
        raise
    return a, b


@pytest.mark.parametrize("with_redis", [True, False], ids=["redis", "postgres-notify"])
async def test_two_nodes_share_pushes(tmp_path: Path, pg_url: str, with_redis: bool) -> None:
    extra = {"CLARION_REDIS_URL": "redis://127.0.0.1:6379/0"} if with_redis else {}
    a, b = _two_nodes(tmp_path, pg_url, **extra)
    try:
        async with websockets.connect(ws_url(b, token_for("ana"))) as ws:
            await recv(ws)
            await asyncio.sleep(0.3)  # let node A learn of the session (registry heartbeat)
            (nid,) = send(a, user_id="ana", title="via node A")
            got, _ = await recv_until(ws, "notification.created")
            assert got["notification"]["id"] == nid
            status = httpx.get(
                f"{a.url}/api/v1/notifications/system/status",
                headers={"Authorization": f"Bearer {a.key}"},
            ).json()
            assert status["status"] == "ok", status
            assert status["broker"]["backend"] == ("redis" if with_redis else "postgres")
            if with_redis:
                assert status["connections"]["total"] >= 1
    finally:
        a.stop()
        b.stop()
