"""Live connections against a real ``clarion serve``: the per-user cap (4009 / 429), the
message rate (``rate_limited`` frames, then 4029), and token expiry and renewal on
WebSocket and Server-Sent Events, with short-lived tokens minted by Clarion's own
``AuthService`` with the server's secret."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from clarion.config import Settings
from clarion.services.auth import AuthService
from tests.e2e.conftest import Server, clarion_env, start_server

SECRET = "e2e-secret-" + "l" * 40
MAX_PER_USER = 3
RATE = 5.0  # messages per second; bursts of 10
_auth = AuthService(None, Settings(secret_key=SECRET), SECRET)  # type: ignore[arg-type]


def mint(user: str, ttl: int = 600) -> str:
    token, _ = _auth.mint_user_token(user, ttl)
    return token


def user() -> str:
    return f"u-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp_path = tmp_path_factory.mktemp("live-limits")
    env = clarion_env(
        tmp_path,
        CLARION_SECRET_KEY=SECRET,
        CLARION_WS_MAX_PER_USER=str(MAX_PER_USER),
        CLARION_WS_ACTIONS_PER_SECOND=str(RATE),
        CLARION_EMBEDDED_WORKER="false",
    )
    server = start_server(tmp_path, env)
    try:
        yield server
    finally:
        server.stop()


def ws_url(server: Server, token: str) -> str:
    return server.url.replace("http://", "ws://") + f"/api/v1/ws?token={token}"


async def recv(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    return dict(orjson.loads(await asyncio.wait_for(ws.recv(), timeout)))


async def close_code(ws: ClientConnection, timeout: float = 15.0) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    assert closed.value.rcvd is not None, "closed without a close frame"
    return closed.value.rcvd.code


async def opened(server: Server, token: str) -> ClientConnection:
    ws = await websockets.connect(ws_url(server, token))
    assert (await recv(ws))["type"] == "unread_count"
    return ws


def send(server: Server, user_id: str, title: str) -> int:
    r = httpx.post(
        f"{server.url}/api/v1/notifications",
        json={"user_id": user_id, "type": "follow", "title": title},
        headers={"Authorization": f"Bearer {server.key}"},
        timeout=10,
    )
    assert r.status_code == 202, r.text
    return int(r.json()["ids"][0])


async def sse_events(response: httpx.Response) -> AsyncIterator[dict[str, str]]:
    event: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            if event:
                yield event
            event = {}
            continue
        key, _, value = line.partition(": ")
        event[key] = value


# --- per-user cap -------------------------------------------------------------------------


async def test_one_connection_beyond_the_user_cap_is_refused(live: Server) -> None:
    ana, bo = user(), user()
    sockets = [await opened(live, mint(ana)) for _ in range(MAX_PER_USER - 1)]
    try:
        async with (
            httpx.AsyncClient(base_url=live.url, timeout=15) as client,
            client.stream(
                "GET", "/api/v1/notifications/stream", params={"token": mint(ana)}
            ) as sse,
        ):
            assert sse.status_code == 200  # the third: WebSocket and SSE count together
            events = sse_events(sse)
            while (await asyncio.wait_for(anext(events), 10)).get("event") != "unread_count":
                pass
            extra = await websockets.connect(ws_url(live, mint(ana)))
            assert await close_code(extra) == 4009
            r = await client.get("/api/v1/notifications/stream", params={"token": mint(ana)})
            assert r.status_code == 429
            assert r.json()["error"]["code"] == "too_many_live_connections"
            assert int(r.headers["Retry-After"]) >= 1
            # Others are not affected, and the open ones keep working.
            other = await opened(live, mint(bo))
            await other.close()
            await sockets[0].send('{"type": "ping"}')
            assert (await recv(sockets[0]))["type"] == "pong"
        # One left (the SSE stream): one more gets in.
        await asyncio.sleep(0.5)
        sockets.append(await opened(live, mint(ana)))
    finally:
        for ws in sockets:
            await ws.close()


# --- message rate -------------------------------------------------------------------------


async def test_a_flooding_client_is_warned_then_closed(live: Server) -> None:
    ana = user()
    async with websockets.connect(ws_url(live, mint(ana))) as ws:
        assert (await recv(ws))["type"] == "unread_count"
        t0 = time.monotonic()
        # A burst (10), then 8 more: refused, not yet a whole burst in debt (closed at 21).
        for _ in range(18):
            await ws.send('{"type": "ping"}')
        replies = [await recv(ws) for _ in range(18)]
        elapsed = time.monotonic() - t0
        pongs = [r for r in replies if r["type"] == "pong"]
        refused = [r for r in replies if r["type"] == "error"]
        # A burst of twice the rate passes; the rest, beyond what refilled meanwhile, not.
        assert 2 * RATE <= len(pongs) <= 2 * RATE + elapsed * RATE + 1, (elapsed, replies)
        assert refused and all(r["code"] == "rate_limited" for r in refused), replies
        retry_after = max(r["retry_after"] for r in refused)
        assert 0 < retry_after <= 10 / RATE, refused
        # A client that waits as told is served again, not closed.
        await asyncio.sleep(retry_after + 0.1)
        await ws.send('{"type": "ping"}')
        assert (await recv(ws))["type"] == "pong"
        # One that keeps sending regardless is closed.
        for _ in range(60):
            try:
                await ws.send('{"type": "ping"}')
            except ConnectionClosed:
                break
        assert await close_code(ws) == 4029


async def test_a_client_within_the_rate_is_never_refused(live: Server) -> None:
    ana = user()
    async with websockets.connect(ws_url(live, mint(ana))) as ws:
        assert (await recv(ws))["type"] == "unread_count"
        for _ in range(12):  # 4 per second for 3 s, under 5 per second
            await ws.send('{"type": "ping"}')
            assert (await recv(ws))["type"] == "pong"
            await asyncio.sleep(0.25)


# --- token expiry and renewal -------------------------------------------------------------


async def test_a_renewed_connection_outlives_its_first_token(live: Server) -> None:
    ana = user()
    async with websockets.connect(ws_url(live, mint(ana, ttl=2))) as ws:
        assert (await recv(ws))["type"] == "unread_count"
        t0 = time.monotonic()
        await ws.send(orjson.dumps({"type": "auth", "token": mint(ana, ttl=5)}).decode())
        ack = await recv(ws)
        assert ack["type"] == "ack" and ack["action"] == "auth", ack
        assert abs(ack["expires_at"] - (time.time() + 5)) < 2
        await asyncio.sleep(3 - (time.monotonic() - t0))  # past the first token's expiry
        (nid,) = [send(live, ana, "after the first expiry")]
        got = await recv(ws)
        assert got["type"] == "notification.created" and got["id"] == nid
        assert await close_code(ws) == 4002
        assert 3.5 < time.monotonic() - t0 < 10  # exp is whole seconds


@pytest.mark.parametrize(
    ("renewal", "code"),
    [
        ("expired", "token_expired"),
        ("garbage", "unauthenticated"),
        ("api_key", "forbidden"),
        ("missing", "validation_failed"),
    ],
)
async def test_a_refused_renewal_leaves_the_first_expiry(
    live: Server, renewal: str, code: str
) -> None:
    ana = user()
    token = {
        "expired": mint(ana, ttl=-5),
        "garbage": "garbage",
        "api_key": live.key,
        "missing": None,
    }[renewal]
    async with websockets.connect(ws_url(live, mint(ana, ttl=2))) as ws:
        assert (await recv(ws))["type"] == "unread_count"
        t0 = time.monotonic()
        await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
        error = await recv(ws)
        assert error["type"] == "error" and error["code"] == code, error
        assert await close_code(ws) == 4002
        assert time.monotonic() - t0 < 5


async def test_a_renewal_for_another_user_closes_the_connection(live: Server) -> None:
    ana, bo = user(), user()
    async with websockets.connect(ws_url(live, mint(ana))) as ws:
        assert (await recv(ws))["type"] == "unread_count"
        await ws.send(orjson.dumps({"type": "auth", "token": mint(bo)}).decode())
        assert await close_code(ws) == 4003


async def test_server_sent_events_end_at_expiry_and_resume_with_a_new_token(
    live: Server,
) -> None:
    ana = user()
    seen: list[dict[str, str]] = []
    first: int | None = None
    async with (
        httpx.AsyncClient(base_url=live.url, timeout=15) as client,
        client.stream(
            "GET", "/api/v1/notifications/stream", params={"token": mint(ana, ttl=3)}
        ) as sse,
    ):
        assert sse.status_code == 200
        t0 = time.monotonic()
        async for event in sse_events(sse):  # until the server ends the stream
            seen.append(event)
            if event.get("event") == "unread_count" and first is None:
                first = send(live, ana, "first")
        assert time.monotonic() - t0 < 8
    assert seen[-1]["event"] == "token_expired", seen
    last_id = max(int(e["id"]) for e in seen if "id" in e)
    assert last_id == first
    missed = send(live, ana, "while away")
    # The expired token is refused; a new one resumes after the last event seen.
    r = httpx.get(f"{live.url}/api/v1/notifications/stream", params={"token": mint(ana, ttl=-1)})
    assert r.status_code == 401 and r.json()["error"]["code"] == "token_expired"
    async with (
        httpx.AsyncClient(base_url=live.url, timeout=15) as client,
        client.stream(
            "GET",
            "/api/v1/notifications/stream",
            params={"token": mint(ana, ttl=600)},
            headers={"Last-Event-ID": str(last_id)},
        ) as sse,
    ):
        events = sse_events(sse)
        event = await asyncio.wait_for(anext(events), 10)
        while event.get("event") != "notification.created":
            event = await asyncio.wait_for(anext(events), 10)
        assert int(event["id"]) == missed
        assert orjson.loads(event["data"])["replay"] is True
