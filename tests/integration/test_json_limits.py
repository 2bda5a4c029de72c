"""JSON limits at the edge and tolerant reads, on SQLite and PostgreSQL, through the app.

A send, a profile or any other body breaking a limit is a 422 ``invalid_json_value``
naming the path, and nothing is stored. Rows written before the limits (put here with
SQL, as an older version could have stored them) are still listed, read, exported and
replayed to a live client resuming from an earlier cursor."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from sqlalchemy import text

from clarion.api.app import create_app
from clarion.config import Settings
from clarion.domain import jsonlimits
from clarion.services.container import Services

N = "/api/v1/notifications"


def err(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details", "doc"}, body
    return dict(body["error"])


def send_body(data_json: str, **extra: Any) -> str:
    head = json.dumps({"user_id": "ana", "type": "t", "title": "hi", **extra})
    return head[:-1] + ', "data": ' + data_json + "}"


async def post_raw(client: httpx.AsyncClient, body: str | bytes, path: str = N) -> httpx.Response:
    return await client.post(path, content=body, headers={"content-type": "application/json"})


async def held(client: httpx.AsyncClient, user: str = "ana") -> list[Any]:
    r = await client.get(N, params={"user_id": user})
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


# --- refused at the edge, nothing stored ------------------------------------------------

BAD_DATA = [
    ('{"n": ' + "9" * 400 + "}", "data.n", "integer_out_of_range"),
    ('{"a": {"b": 9223372036854775808}}', "data.a.b", "integer_out_of_range"),
    ('{"a": [-9223372036854775809]}', "data.a.0", "integer_out_of_range"),
    ('{"a": 18446744073709551616}', "data.a", "integer_out_of_range"),
    ('{"x": NaN}', "data.x", "not_finite"),
    ('{"x": [1, Infinity]}', "data.x.1", "not_finite"),
    ('{"x": -Infinity}', "data.x", "not_finite"),
    ('{"x": 1e400}', "data.x", "not_finite"),
    ('{"n": ' + "[" * 255 + "]" * 255 + "}", None, "too_deep"),
]


@pytest.mark.parametrize(("data", "field", "problem"), BAD_DATA)
async def test_a_send_beyond_the_limits_is_refused_and_stores_nothing(
    authed: httpx.AsyncClient, data: str, field: str | None, problem: str
) -> None:
    r = await post_raw(authed, send_body(data))
    assert r.status_code == 422, r.text
    error = err(r)
    assert error["code"] == "invalid_json_value"
    assert error["details"][0]["field"] == field
    assert error["details"][0]["problem"] == problem
    assert await held(authed) == []
    # The same send with a batch of recipients (the FastAPI route, not the fast path).
    r = await post_raw(authed, send_body(data).replace('"user_id": "ana"', '"user_ids": ["ana"]'))
    assert r.status_code == 422 and err(r)["code"] == "invalid_json_value"
    assert await held(authed) == []
    counts = (await authed.get(f"{N}/unread-count", params={"user_id": "ana"})).json()
    assert counts["unread"] == 0


async def test_nesting_is_counted_on_the_whole_body(
    authed: httpx.AsyncClient, settings: Settings
) -> None:
    depth = settings.max_json_depth
    assert depth == 32  # the documented default
    # The body is level 1 and data level 2: data may nest depth - 1 levels in all.
    ok = "[" * (depth - 2) + "]" * (depth - 2)
    r = await post_raw(authed, send_body('{"a": ' + ok + "}"))
    assert r.status_code == 202, r.text
    deeper = "[" * (depth - 1) + "]" * (depth - 1)
    r = await post_raw(authed, send_body('{"a": ' + deeper + "}"))
    assert r.status_code == 422 and err(r)["details"][0]["problem"] == "too_deep"
    assert len(await held(authed)) == 1


async def test_a_body_nested_100000_levels_is_a_quick_422(authed: httpx.AsyncClient) -> None:
    for body in (
        "[" * 100_000 + "]" * 100_000,
        send_body("[" * 100_000 + "]" * 100_000),
        send_body("[" * 100_000),  # never closed
    ):
        for path in (N, "/api/v1/users/ana", "/api/v1/notifications/preferences/ana"):
            start = time.perf_counter()
            r = await authed.request(
                "PUT" if path != N else "POST",
                path,
                content=body,
                headers={"content-type": "application/json"},
            )
            assert r.status_code == 422, (path, r.text)
            assert err(r)["code"] == "invalid_json_value"
            assert time.perf_counter() - start < 5.0
    assert await held(authed) == []


async def test_limits_hold_for_every_free_form_field(authed: httpx.AsyncClient) -> None:
    """Every route taking arbitrary JSON: a send's media, actions, content and data, a
    profile's data, preview samples, preferences and batching rules."""
    nan = "NaN"
    cases = [
        ("POST", N, send_body("{}", media={}).replace('"media": {}', '"media": {"x": NaN}')),
        ("POST", N, send_body("{}").replace('"data"', '"actions": [{"x": NaN}], "data"')),
        ("POST", N, send_body("{}").replace('"data"', '"content": {"x": NaN}, "data"')),
        ("PUT", "/api/v1/users/ana", '{"data": {"x": ' + nan + "}}"),
        ("PUT", "/api/v1/notifications/preferences/ana", '{"channels": {"x": NaN}}'),
        ("PUT", "/api/v1/notifications/batching/rules/t", '{"window_seconds": NaN}'),
        ("PUT", "/api/v1/notifications/batching/rules", '[{"type": "t", "count": 1e400}]'),
        ("POST", "/api/v1/templates/k/preview", '{"data": {"x": NaN}}'),
        ("POST", "/api/v1/templates/k/preview", '{"user": {"x": NaN}}'),
        ("POST", "/api/v1/templates/k/preview", '{"notification": {"x": NaN}}'),
    ]
    for method, path, body in cases:
        r = await authed.request(
            method, path, content=body, headers={"content-type": "application/json"}
        )
        assert r.status_code == 422, (path, body, r.text)
        error = err(r)
        assert error["code"] == "invalid_json_value", (path, error)
        assert error["details"][0]["problem"] == "not_finite"
    assert await held(authed) == []
    assert (await authed.get("/api/v1/users/ana")).status_code == 404


async def test_a_user_token_cannot_poison_its_own_profile(authed: httpx.AsyncClient) -> None:
    r = await authed.put("/api/v1/users/ana", json={"name": "Ana", "data": {"a": 1}})
    assert r.status_code == 200, r.text
    token = (await authed.post("/api/v1/users/ana/token")).json()["token"]
    user = {"Authorization": f"Bearer {token}"}
    for data in ('{"n": ' + "9" * 400 + "}", '{"d": ' + "[" * 255 + "]" * 255 + "}"):
        r = await authed.put(
            "/api/v1/users/ana",
            content='{"name": "Eve", "data": ' + data + "}",
            headers={**user, "content-type": "application/json"},
        )
        assert r.status_code == 422 and err(r)["code"] == "invalid_json_value", r.text
    r = await authed.get("/api/v1/users/ana", headers=user)
    assert r.status_code == 200
    assert r.json()["name"] == "Ana" and r.json()["data"] == {"a": 1}


async def test_values_at_the_limits_round_trip_exactly(authed: httpx.AsyncClient) -> None:
    data = {
        "max": jsonlimits.MAX_INT,
        "min": jsonlimits.MIN_INT,
        "big": 1.7976931348623157e308,
        "small": -5e-324,
        "half": 0.1,
        "text": "é \U0001f600 \u2028",
        "deep": json.loads("[" * 29 + "]" * 29),
    }
    for form in ({"user_id": "ana"}, {"user_ids": ["ana"]}):
        r = await authed.post(N, json={**form, "type": "t", "title": "x", "data": data})
        assert r.status_code == 202, r.text
    items = await held(authed)
    assert [i["data"] for i in items] == [data, data]
    (one,) = {i["id"] for i in items[:1]}
    assert (await authed.get(f"{N}/{one}")).json()["data"] == data


# --- rows stored before the limits --------------------------------------------------------


async def _store_raw(services: Services, nid: int, data_text: str) -> None:
    """Overwrite a notification's ``data`` with JSON text as an older version stored it."""
    cast = "CAST(:d AS json)" if not services.db.is_sqlite else ":d"
    async with services.db.begin() as conn:
        await conn.execute(
            text(f"UPDATE notifications SET data = {cast} WHERE id = :id"),
            {"d": data_text, "id": nid},
        )


def _legacy_rows(services: Services) -> list[tuple[str, Any]]:
    deep = 300
    rows: list[tuple[str, Any]] = [
        ('{"n": ' + "9" * 400 + "}", {"n": "9" * 400}),
        ('{"n": -' + "1" * 30 + "}", {"n": "-" + "1" * 30}),
        ('{"d": ' + "[" * deep + "]" * deep + ', "k": 1}', None),
    ]
    if services.db.is_sqlite:  # PostgreSQL's json type never held these
        rows += [('{"x": NaN, "y": Infinity}', {"x": None, "y": None})]
    return rows


def _check_legacy(data: Any, expected: Any) -> None:
    if expected is not None:
        assert data == expected
    else:
        assert data["k"] == 1
        depth, value = 0, data["d"]
        while isinstance(value, list) and value:
            depth, value = depth + 1, value[0]
        assert 190 <= depth <= jsonlimits.READ_MAX_DEPTH


async def _legacy(authed: httpx.AsyncClient, services: Services) -> list[tuple[int, Any]]:
    out = []
    for stored, expected in _legacy_rows(services):
        r = await authed.post(N, json={"user_id": "ana", "type": "t", "title": "x"})
        (nid,) = r.json()["ids"]
        await _store_raw(services, nid, stored)
        out.append((nid, expected))
    return out


async def test_rows_stored_before_the_limits_are_still_read(
    authed: httpx.AsyncClient, services: Services
) -> None:
    rows = await _legacy(authed, services)
    r = await authed.post(N, json={"user_id": "ana", "type": "t", "title": "ok"})
    assert r.status_code == 202
    for status in ("all", "unread"):  # the two store paths of a page
        r = await authed.get(N, params={"user_id": "ana", "status": status})
        assert r.status_code == 200, r.text
        by_id = {i["id"]: i["data"] for i in r.json()["items"]}
        for nid, expected in rows:
            _check_legacy(by_id[nid], expected)
    for nid, expected in rows:
        r = await authed.get(f"{N}/{nid}")
        assert r.status_code == 200, r.text
        _check_legacy(r.json()["data"], expected)
        r = await authed.post(f"{N}/{nid}/read")
        assert r.status_code == 200, r.text
    r = await authed.get("/api/v1/users/ana/export")
    assert r.status_code == 200, r.text
    exported = {n["id"]: n["data"] for n in r.json()["notifications"]}
    for nid, expected in rows:
        _check_legacy(exported[nid], expected)


async def test_a_profile_stored_before_the_limits_is_still_read(
    authed: httpx.AsyncClient, services: Services
) -> None:
    assert (await authed.put("/api/v1/users/ana", json={"name": "Ana"})).status_code == 200
    cast = "CAST(:d AS json)" if not services.db.is_sqlite else ":d"
    async with services.db.begin() as conn:
        await conn.execute(
            text(f"UPDATE users SET data = {cast} WHERE user_id = 'ana'"),
            {"d": '{"n": ' + "9" * 400 + "}"},
        )
    r = await authed.get("/api/v1/users/ana")
    assert r.status_code == 200 and r.json()["data"] == {"n": "9" * 400}
    r = await authed.put("/api/v1/users/ana", json={"name": "Ana B"})
    assert r.status_code == 200 and r.json()["data"] == {"n": "9" * 400}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def live(settings: Settings, services: Services) -> AsyncIterator[str]:
    """The app on a real uvicorn server (WebSocket and SSE need one)."""
    port = _free_port()
    config = uvicorn.Config(
        create_app(settings, services),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
    )
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve())
    while not srv.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.01)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        await asyncio.wait_for(task, 20)


async def test_a_live_resume_replays_rows_stored_before_the_limits(
    authed: httpx.AsyncClient, services: Services, live: str
) -> None:
    rows = await _legacy(authed, services)
    token, _ = services.auth.mint_user_token("ana")
    url = f"ws://{live}/api/v1/ws?token={token}&cursor=0"
    async with websockets.connect(url, max_size=None) as ws:
        replayed: dict[int, Any] = {}
        while len(replayed) < len(rows):
            event = json.loads(await asyncio.wait_for(ws.recv(), 20))
            if event["type"] == "notification.created":
                replayed[event["id"]] = event["notification"]["data"]
        for nid, expected in rows:
            _check_legacy(replayed[nid], expected)
        # The connection lives on: a new send arrives live.
        r = await authed.post(N, json={"user_id": "ana", "type": "t", "title": "live"})
        (new,) = r.json()["ids"]
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), 20))
            if event["type"] == "notification.created" and event["id"] == new:
                break
    # Server-Sent Events resume the same way.
    async with (
        httpx.AsyncClient(timeout=20) as client,
        client.stream(
            "GET",
            f"http://{live}/api/v1/notifications/stream",
            params={"token": token, "cursor": "0"},
        ) as stream,
    ):
        assert stream.status_code == 200
        seen: dict[int, Any] = {}
        async for line in stream.aiter_lines():
            if line.startswith("data: ") and '"notification.created"' in line:
                event = json.loads(line[6:])
                seen[event["id"]] = event["notification"]["data"]
                if len(seen) == len(rows) + 1:
                    break
        for nid, expected in rows:
            _check_legacy(seen[nid], expected)
