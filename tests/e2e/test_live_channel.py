"""The ``websocket`` channel through a real ``clarion serve``: a toast to the user's open
connections, kept nowhere, recorded as delivered with the number of connections, or
suppressed as ``not_connected`` when the user has none open."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import websockets

from tests.e2e.conftest import Server, clarion_env, start_server
from tests.e2e.test_realtime import SECRET, names, recv, send, token_for, ws_url


@pytest.fixture(scope="module")
def toasty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp_path = tmp_path_factory.mktemp("toast")
    env = clarion_env(tmp_path, CLARION_SECRET_KEY=SECRET, CLARION_WORKER_POLL_SECONDS="0.2")
    server = start_server(tmp_path, env)
    try:
        yield server
    finally:
        server.stop()


def _get(server: Server, path: str) -> Any:
    r = httpx.get(
        f"{server.url}/api/v1{path}", headers={"Authorization": f"Bearer {server.key}"}, timeout=10
    )
    assert r.status_code == 200, r.text
    return r.json()


def _delivery(server: Server, nid: int, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        (d,) = _get(server, f"/notifications/{nid}/deliveries")["deliveries"]
        if d["status"] not in ("pending", "sending") or time.monotonic() > deadline:
            return dict(d)
        time.sleep(0.1)


async def test_a_toast_reaches_open_connections_and_is_kept_nowhere(toasty: Server) -> None:
    (ana,) = names("ana")
    async with (
        websockets.connect(ws_url(toasty, token_for(ana))) as phone,
        websockets.connect(ws_url(toasty, token_for(ana))) as laptop,
    ):
        for ws in (phone, laptop):
            assert (await recv(ws))["type"] == "unread_count"
        (nid,) = send(toasty, user_id=ana, title="Build finished", channels=["websocket"])
        for ws in (phone, laptop):
            toast = await recv(ws, timeout=30)
            assert toast["type"] == "notification.toast", toast
            assert toast["id"] == nid
            assert toast["notification"]["title"] == "Build finished"
        d = _delivery(toasty, nid)
        assert (d["channel"], d["status"]) == ("websocket", "delivered"), d
        assert d["attempts"][0]["outcome"] == "delivered"

    # Not in the inbox, not counted, not replayed on resume.
    assert _get(toasty, f"/notifications?user_id={ana}")["items"] == []
    assert _get(toasty, f"/notifications/unread-count?user_id={ana}")["unread"] == 0
    async with websockets.connect(ws_url(toasty, token_for(ana), cursor=0)) as again:
        first = await recv(again)
        assert first["type"] == "unread_count" and first["unread"] == 0
        with pytest.raises(asyncio.TimeoutError):
            await recv(again, timeout=1.0)


async def test_no_open_connection_is_suppressed_not_connected(toasty: Server) -> None:
    (bo,) = names("bo")
    (nid,) = send(toasty, user_id=bo, title="Nobody listening", channels=["websocket"])
    d = _delivery(toasty, nid)
    assert (d["status"], d["reason"]) == ("suppressed", "not_connected"), d


async def test_in_app_and_websocket_together_store_once_and_toast(toasty: Server) -> None:
    (cy,) = names("cy")
    async with websockets.connect(ws_url(toasty, token_for(cy))) as ws:
        await recv(ws)
        (nid,) = send(toasty, user_id=cy, title="Both", channels=["in_app", "websocket"])
        kinds = set()
        deadline = time.monotonic() + 30
        while not {"notification.created", "notification.toast"} <= kinds:
            msg = await recv(ws, timeout=max(0.1, deadline - time.monotonic()))
            kinds.add(msg["type"])
    items = _get(toasty, f"/notifications?user_id={cy}")["items"]
    assert [i["id"] for i in items] == [nid]
    assert orjson.loads(orjson.dumps(items[0]))["channels"] == ["in_app", "websocket"]
