"""Client input is a 4xx, never a storage alarm: NUL and control characters in paths,
queries, headers and body strings, and cursors Clarion did not issue, on both databases
(PostgreSQL refuses NUL in text: before these checks it answered 503)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from clarion.domain import cursors

N = "/api/v1/notifications"
LISTS = [
    N,
    f"{N}/batches",
    f"{N}/scheduled",
    "/api/v1/templates",
]


def err(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    return dict(body["error"])


async def nothing_stored(authed: httpx.AsyncClient) -> None:
    r = await authed.get(N, params={"user_id": "ana"})
    assert r.status_code == 200 and r.json()["items"] == []
    r = await authed.get(f"{N}/scheduled")
    assert r.status_code == 200 and r.json()["items"] == []


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", f"{N}?user_id=ana&cursor=%00"),
        ("GET", f"{N}?user_id=a%00na"),
        ("GET", f"{N}?user_id=ana&type=t%01"),
        ("GET", f"{N}/unread-count?user_id=ana%00"),
        ("GET", f"{N}/batches?cursor=ab%00"),
        ("GET", f"{N}/scheduled?cursor=%1F"),
        ("GET", "/api/v1/templates?cursor=%00"),
        ("DELETE", f"{N}/scheduled?cancellation_key=k%00"),
        ("GET", "/api/v1/users/an%00a"),
        ("PUT", "/api/v1/users/an%00a"),
        ("GET", "/api/v1/templates/k%00"),
        ("GET", f"{N}/preferences/ana%7F"),
        ("POST", f"{N}/read-all?user_id=%00"),
    ],
)
async def test_control_characters_in_paths_and_queries_are_400(
    authed: httpx.AsyncClient, method: str, url: str
) -> None:
    for _ in range(2):  # the second time the fast path knows the hot routes
        r = await authed.request(method, url, json={} if method == "PUT" else None)
        assert r.status_code == 400, (url, r.text)
        error = err(r)
        assert error["code"] == "invalid_parameter", error
        assert error["details"][0]["problem"] == "control"


async def test_control_characters_in_an_idempotency_key_are_422(
    authed: httpx.AsyncClient,
) -> None:
    body = {"user_id": "ana", "type": "t", "title": "x"}
    for _ in range(2):  # the route, then the fast path: the same answer
        r = await authed.post(N, json=body, headers={"Idempotency-Key": "k\x01ey"})
        assert r.status_code == 422, r.text
        assert err(r)["details"][0]["field"] == "Idempotency-Key"
    await nothing_stored(authed)


@pytest.mark.parametrize(
    "body",
    [
        {"user_id": "a\x00na", "type": "t", "title": "x"},
        {"user_ids": ["ana", "b\x00o"], "type": "t", "title": "x"},
        {"user_id": "ana", "type": "t", "title": "x\x00"},
        {
            "user_id": "ana",
            "type": "t",
            "title": "x",
            "scheduled_for": "2100-01-01T00:00:00Z",
            "cancellation_key": "k\x00",
        },
        {"user_id": "ana", "type": "t", "title": "x", "group_key": "\x00"},
    ],
)
async def test_nul_in_body_strings_is_422(authed: httpx.AsyncClient, body: Any) -> None:
    for _ in range(2):
        r = await authed.post(N, json=body)
        assert r.status_code == 422, r.text
    await nothing_stored(authed)


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "zzzz",
        "0f8fad5b-d9cb-469f-a165-70867728950e",  # a raw id is not a cursor
        cursors.encode("n", 5)[:-1],
        "n:12",
        "é",
    ],
)
async def test_garbage_cursors_are_bad_cursor_on_every_list(
    authed: httpx.AsyncClient, path: str, cursor: str
) -> None:
    params = {"cursor": cursor}
    if path == N:
        params["user_id"] = "ana"
    for _ in range(2):
        r = await authed.get(path, params=params)
        assert r.status_code == 400, (path, cursor, r.text)
        assert err(r)["code"] == "bad_cursor"


async def test_a_cursor_of_another_list_is_refused(authed: httpx.AsyncClient) -> None:
    issued = {
        N: cursors.encode("n", 7),
        f"{N}/batches": cursors.encode("b", "0f8fad5b-d9cb-469f-a165-70867728950e"),
        f"{N}/scheduled": cursors.encode("s", "0f8fad5b-d9cb-469f-a165-70867728950e"),
        "/api/v1/templates": cursors.encode("t", "follow"),
    }
    for path in LISTS:
        for other, cursor in issued.items():
            params = {"cursor": cursor, **({"user_id": "ana"} if path == N else {})}
            r = await authed.get(path, params=params)
            expected = 200 if other == path else 400
            assert r.status_code == expected, (path, other, r.text)


async def test_scheduled_and_batches_page_with_issued_cursors(authed: httpx.AsyncClient) -> None:
    when = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    for i in range(3):
        r = await authed.post(
            N, json={"user_id": "ana", "type": "t", "title": f"s{i}", "scheduled_for": when}
        )
        assert r.status_code == 202, r.text
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await authed.get(f"{N}/scheduled", params=params)).json()
        seen += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert cursors.decode("s", cursor) == seen[-1]
    assert len(seen) == len(set(seen)) == 3

    r = await authed.put(
        f"{N}/batching/rules/chat",
        json={"strategy": "window_or_count", "window_seconds": 3600, "count": 100},
    )
    assert r.status_code == 200, r.text
    for user in ("ana", "bo", "cy"):
        r = await authed.post(N, json={"user_id": user, "type": "chat", "title": "hi"})
        assert r.status_code == 202 and r.json()["batched"], r.text
    seen = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await authed.get(f"{N}/batches", params=params)).json()
        seen += [b["id"] for b in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 3
