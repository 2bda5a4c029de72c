"""The HTTP API through the ASGI app, on both backends: the curl walkthrough, errors in
the documented shape, idempotency, limits and user tokens."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from clarion.api.app import create_app
from clarion.config import Settings
from clarion.services.container import Services

N = "/api/v1/notifications"


def err(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details", "doc"}, body
    assert body["error"]["doc"] == f"/docs/errors#{body['error']['code']}", body
    return dict(body["error"])


async def post(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    body.setdefault("type", "follow")
    body.setdefault("title", "Bo followed you")
    return await client.post(N, json=body)


async def test_walkthrough(authed: httpx.AsyncClient) -> None:
    r = await post(authed, user_id="ana", message="Say hi", data={"actor": "bo"})
    assert r.status_code == 202, r.text
    (nid,) = r.json()["ids"]
    r = await authed.get(N, params={"user_id": "ana"})
    assert r.status_code == 200
    items = r.json()["items"]
    assert [i["id"] for i in items] == [nid]
    assert items[0]["data"] == {"actor": "bo"} and items[0]["status"] == "unread"
    r = await authed.get(f"{N}/unread-count", params={"user_id": "ana"})
    assert r.json() == {"user_id": "ana", "unread": 1, "unseen": 1}
    r = await authed.post(f"{N}/{nid}/read")
    assert r.status_code == 200 and r.json()["status"] == "read"
    r = await authed.get(f"{N}/unread-count", params={"user_id": "ana"})
    assert r.json()["unread"] == 0
    await post(authed, user_ids=["ana", "bo"])
    r = await authed.post(f"{N}/read-all", params={"user_id": "ana"})
    assert r.json() == {"user_id": "ana", "unread": 0, "unseen": 0}
    r = await authed.get(f"{N}/{nid}")
    assert r.status_code == 200 and r.json()["id"] == nid
    r = await authed.delete(f"{N}/{nid}")
    assert r.status_code == 204
    assert (await authed.get(f"{N}/{nid}")).status_code == 404


async def test_every_action_route(authed: httpx.AsyncClient) -> None:
    (nid,) = (await post(authed, user_id="ana")).json()["ids"]
    expectations = {
        "seen": ("seen_at", True),
        "read": ("read_at", True),
        "unread": ("read_at", False),
        "archive": ("archived_at", True),
        "unarchive": ("archived_at", False),
    }
    for action, (field, is_set) in expectations.items():
        r = await authed.post(f"{N}/{nid}/{action}")
        assert r.status_code == 200, (action, r.text)
        assert (r.json()[field] is not None) is is_set, action


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"user_id": "ana", "type": "x"}, 422, "validation_failed"),  # no title
        ({"type": "x", "title": "t"}, 422, "validation_failed"),  # no recipient
        ({"user_id": "a", "user_ids": ["b"], "type": "x", "title": "t"}, 422, "validation_failed"),
        ({"user_id": "ana", "type": "x", "title": "t", "bogus": 1}, 422, "validation_failed"),
        ({"user_id": "ana", "type": "x", "title": "t" * 201}, 422, "validation_failed"),
        (
            {"user_id": "ana", "type": "x", "title": "t", "priority": "max"},
            422,
            "validation_failed",
        ),
        (
            {"user_id": "ana", "type": "x", "title": "t", "channels": ["pigeon"]},
            422,
            "validation_failed",
        ),
        (
            {"user_id": "ana", "type": "x", "title": "t", "channels": ["email", "email"]},
            422,
            "validation_failed",
        ),
        (
            {"user_id": "ana", "type": "x", "title": "t", "template": "rich_media"},
            422,
            "validation_failed",
        ),  # rich_media needs media
        ({"user_id": "ana", "type": "x", "title": 5}, 422, "validation_failed"),
        (
            {"user_ids": [f"u{i}" for i in range(1001)], "type": "x", "title": "t"},
            422,
            "validation_failed",
        ),
        ({"user_id": "", "type": "x", "title": "t"}, 422, "validation_failed"),
        ({"user_id": "ana", "type": "bad type!", "title": "t"}, 422, "validation_failed"),
    ],
)
async def test_bad_sends_are_refused_and_change_nothing(
    authed: httpx.AsyncClient, body: dict[str, Any], status: int, code: str
) -> None:
    r = await authed.post(N, json=body)
    assert r.status_code == status, r.text
    assert err(r)["code"] == code
    r = await authed.get(f"{N}/unread-count", params={"user_id": "ana"})
    assert r.json()["unread"] == 0


async def test_malformed_json_and_wrong_content(authed: httpx.AsyncClient) -> None:
    r = await authed.post(N, content=b'{"user_id": ', headers={"content-type": "application/json"})
    assert r.status_code == 400 and err(r)["code"] == "malformed_json"
    r = await authed.post(N, content=b"[1, 2]", headers={"content-type": "application/json"})
    assert r.status_code == 422 and err(r)["code"] == "validation_failed"


async def test_body_limit(authed: httpx.AsyncClient, services: Services) -> None:
    big = "x" * (services.settings.max_body_bytes + 10)
    r = await post(authed, user_id="ana", data={"blob": big})
    assert r.status_code == 413 and err(r)["code"] == "payload_too_large"

    async def chunks() -> Any:  # no Content-Length: counted while streaming
        yield b'{"user_id": "ana", "type": "x", "title": "t", "data": {"b": "'
        for _ in range(services.settings.max_body_bytes // 65536 + 2):
            yield b"y" * 65536
        yield b'"}}'

    r = await authed.post(N, content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and err(r)["code"] == "payload_too_large"
    r = await authed.get(f"{N}/unread-count", params={"user_id": "ana"})
    assert r.json()["unread"] == 0


async def test_unknown_ids_cursors_and_routes(authed: httpx.AsyncClient) -> None:
    assert err(await authed.get(f"{N}/999999"))["code"] == "not_found"
    assert err(await authed.post(f"{N}/999999/read"))["code"] == "not_found"
    assert err(await authed.delete(f"{N}/999999"))["code"] == "not_found"
    r = await authed.get(f"{N}/99999999999999999999999")
    assert r.status_code == 422
    r = await authed.get(N, params={"user_id": "ana", "cursor": "nope"})
    assert r.status_code == 400 and err(r)["code"] == "bad_cursor"
    r = await authed.get(N, params={"user_id": "ana", "limit": 0})
    assert r.status_code == 422
    r = await authed.get("/api/v1/nowhere")
    assert r.status_code == 404 and err(r)["code"] == "not_found"
    # A path segment that is no notification id names no route (it was 422 int_parsing).
    for path in (f"{N}/no-such-thing", f"{N}/-1", f"{N}/abc/read", f"{N}/x/deliveries"):
        r = await authed.get(path) if "read" not in path else await authed.post(path)
        assert r.status_code == 404 and err(r)["code"] == "not_found", path
    r = await authed.put(N)
    assert r.status_code == 405 and err(r)["code"] == "method_not_allowed"
    r = await authed.get(N)  # an API key must say which user
    assert r.status_code == 422


async def test_auth_required(client: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", N),
        ("POST", N),
        ("GET", f"{N}/unread-count"),
        ("POST", f"{N}/1/read"),
        ("GET", "/api/v1/users/ana"),
    ]:
        r = await client.request(method, path, params={"user_id": "ana"})
        assert r.status_code == 401, (method, path)
        assert err(r)["code"] == "unauthenticated"
    r = await client.get(N, headers={"Authorization": "Bearer clk_wrong"})
    assert r.status_code == 401
    r = await client.get(N, headers={"Authorization": "Bearer not.a.jwt"})
    assert r.status_code == 401


async def test_revoked_key_stops_working(client: httpx.AsyncClient, services: Services) -> None:
    key_id, key = await services.auth.create_api_key("temp")
    client.headers["Authorization"] = f"Bearer {key}"
    assert (await client.get(f"{N}/unread-count", params={"user_id": "a"})).status_code == 200
    await services.auth.revoke_api_key(key_id)
    assert (await client.get(f"{N}/unread-count", params={"user_id": "a"})).status_code == 401


async def test_key_revoked_on_another_node_stops_within_the_cache_time(
    settings: Settings,
) -> None:
    """A verified key is trusted for ``api_key_cache_seconds`` without a lookup; a key
    revoked elsewhere (another node, the CLI) stops working once that time has passed."""
    fast_expiry = settings.model_copy(update={"api_key_cache_seconds": 0.5})
    async with serving(fast_expiry) as (client, _node):
        other = Services(settings)  # the node (or CLI) that revokes
        await other.start()
        try:
            key_id, key = await other.auth.create_api_key("temp")
            client.headers["Authorization"] = f"Bearer {key}"
            for path in (f"{N}/unread-count", N):
                assert (await client.get(path, params={"user_id": "a"})).status_code == 200
            await other.auth.revoke_api_key(key_id)
            revoked_at = time.monotonic()
            statuses = []
            while time.monotonic() - revoked_at < 2.0:
                r = await client.get(f"{N}/unread-count", params={"user_id": "a"})
                statuses.append((time.monotonic() - revoked_at, r.status_code))
                if r.status_code == 401:
                    break
                await asyncio.sleep(0.05)
            elapsed, status = statuses[-1]
            assert status == 401 and elapsed <= 0.5 + 0.3, statuses
            assert err(r)["code"] == "unauthenticated"
            assert (await client.get(N, params={"user_id": "a"})).status_code == 401
        finally:
            await other.close()


@asynccontextmanager
async def serving(
    settings: Settings,
) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    """An app over services of its own, for settings the shared fixtures do not use."""
    services = Services(settings)
    await services.start()
    try:
        transport = httpx.ASGITransport(app=create_app(settings, services))
        async with httpx.AsyncClient(transport=transport, base_url="http://clarion.test") as c:
            yield c, services
    finally:
        await services.close()


class TestHotReads:
    """Unread count and pages are answered by api/fastpath for plainly valid requests;
    everything else must get exactly the FastAPI route's answer."""

    async def test_same_answer_as_the_route(self, authed: httpx.AsyncClient) -> None:
        ids = (await post(authed, user_ids=["ana"] * 1)).json()["ids"]
        ids += (await post(authed, user_id="ana", type="mention")).json()["ids"]
        # ``cursor=`` (empty) is declined by the fast path; the route reads it as none.
        fast = await authed.get(N, params={"user_id": "ana"})
        routed = await authed.get(N, params={"user_id": "ana", "cursor": ""})
        assert fast.status_code == routed.status_code == 200
        assert fast.json() == routed.json()
        assert [i["id"] for i in fast.json()["items"]] == sorted(ids, reverse=True)
        for h in ("content-type", "ratelimit-limit"):
            assert fast.headers[h] == routed.headers[h], h
        # Whole seconds to the window's end, rounded up: a second boundary may fall
        # between the two sends on a loaded machine (or the window may roll over).
        fast_reset = int(fast.headers["ratelimit-reset"])
        routed_reset = int(routed.headers["ratelimit-reset"])
        assert fast_reset - routed_reset in (0, 1) or routed_reset > fast_reset
        assert (
            int(fast.headers["ratelimit-remaining"])
            == int(routed.headers["ratelimit-remaining"]) + 1
        )
        r = await authed.get(N, params={"user_id": "ana", "limit": "1", "type": "follow"})
        assert [i["type"] for i in r.json()["items"]] == ["follow"]
        r = await authed.get(N, params={"user_id": "ana", "limit": "1", "status": "unread"})
        page2 = await authed.get(
            N, params={"user_id": "ana", "status": "unread", "cursor": r.json()["next_cursor"]}
        )
        assert [i["id"] for i in r.json()["items"] + page2.json()["items"]] == sorted(
            ids, reverse=True
        )
        r = await authed.get(f"{N}/unread-count", params={"user_id": "ana"})
        assert r.json() == {"user_id": "ana", "unread": 2, "unseen": 2}
        assert "ratelimit-remaining" in r.headers
        text = (await authed.get("/metrics")).text
        assert 'route="/api/v1/notifications/unread-count"' in text

    @pytest.mark.parametrize(
        ("path", "params", "status", "code"),
        [
            (f"{N}/unread-count", {"user_id": "ana", "bogus": "1"}, 422, "validation_failed"),
            (
                f"{N}/unread-count",
                [("user_id", "ana"), ("user_id", "bo")],
                422,
                "validation_failed",
            ),
            (f"{N}/unread-count", {}, 422, "validation_failed"),
            (f"{N}/unread-count", {"user_id": ""}, 422, "validation_failed"),
            (f"{N}/unread-count", {"user_id": "a/b"}, 422, "validation_failed"),
            (N, {"user_id": "ana", "limit": "0"}, 422, "validation_failed"),
            (N, {"user_id": "ana", "limit": "101"}, 422, "validation_failed"),
            (N, {"user_id": "ana", "limit": "x"}, 422, "validation_failed"),
            (N, {"user_id": "ana", "status": "seen"}, 422, "validation_failed"),
            (N, {"user_id": "ana", "archived": "yes"}, 422, "validation_failed"),
            (N, {"user_id": "ana", "type": "a b"}, 422, "validation_failed"),
            (N, {"user_id": "ana", "cursor": "c" * 65}, 422, "validation_failed"),
            (N, {"user_id": "ana", "cursor": "garbage"}, 400, "bad_cursor"),
            (N, {"user_id": "ana", "statu": "unread"}, 422, "validation_failed"),
        ],
    )
    async def test_refusals_are_the_routes(
        self,
        authed: httpx.AsyncClient,
        path: str,
        params: Any,
        status: int,
        code: str,
    ) -> None:
        r = await authed.get(path, params=params)
        assert r.status_code == status, r.text
        assert err(r)["code"] == code

    async def test_unicode_user_ids_take_the_route(self, authed: httpx.AsyncClient) -> None:
        await post(authed, user_id="анна")
        r = await authed.get(f"{N}/unread-count", params={"user_id": "анна"})
        assert r.json() == {"user_id": "анна", "unread": 1, "unseen": 1}
        assert len((await authed.get(N, params={"user_id": "анна"})).json()["items"]) == 1

    @pytest.mark.parametrize("redis", ["up", "unreachable"])
    async def test_rate_limited_with_headers(self, settings: Settings, redis: str) -> None:
        """429 + Retry-After + RateLimit-* from the one-round-trip limiter on Redis, and
        from the in-memory fallback when Redis cannot be reached."""
        from tests.conftest import REDIS_URL

        url = REDIS_URL if redis == "up" else "redis://127.0.0.1:9/0"  # discard port
        limited = settings.model_copy(
            update={
                "rate_limit_api": "3/minute",
                "redis_url": url,
                "redis_prefix": f"clarion-test-{time.monotonic_ns()}",
            }
        )
        async with serving(limited) as (client, services):
            if redis == "up" and not services.hub.limiter.link.healthy:  # type: ignore[union-attr]
                pytest.skip("Redis at 127.0.0.1:6379 is not reachable")
            _id, key = await services.auth.create_api_key("limited")
            client.headers["Authorization"] = f"Bearer {key}"
            paths = [f"{N}/unread-count", N, f"{N}/unread-count", N]
            answers = [await client.get(p, params={"user_id": "ana"}) for p in paths]
            assert [a.status_code for a in answers] == [200, 200, 200, 429]
            assert [a.headers["ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
            denied = answers[-1]
            assert err(denied)["code"] == "rate_limited"
            assert 1 <= int(denied.headers["retry-after"]) <= 60
            assert denied.headers["ratelimit-limit"] == "3"
            storage = "redis" if redis == "up" else "memory"
            decision = await services.hub.limiter.hit("api", "probe", "3/minute")
            assert decision.storage == storage


# FastAPI reads any ``+json`` media type as JSON; the fast path takes application/json only.
PLUS_JSON = {"content-type": "application/vnd.clarion+json"}


class TestHotSend:
    """``POST /notifications`` is answered by api/fastpath when it is plainly valid; every
    other send must get exactly the FastAPI route's answer. Routing leaves ``endpoint`` in
    the ASGI scope and the fast path does not, which tells the two apart."""

    @pytest.fixture
    async def observed(
        self, settings: Settings, services: Services, api_key: str
    ) -> AsyncIterator[tuple[httpx.AsyncClient, list[dict[str, Any]]]]:
        app = create_app(settings, services)
        scopes: list[dict[str, Any]] = []

        async def observe(scope: Any, receive: Any, send: Any) -> None:
            await app(scope, receive, send)
            if scope["type"] == "http":
                scopes.append(scope)

        transport = httpx.ASGITransport(app=observe)
        async with httpx.AsyncClient(transport=transport, base_url="http://clarion.test") as c:
            c.headers["Authorization"] = f"Bearer {api_key}"
            await post(c, user_id="warm-up")  # the first send of a route is always routed
            yield c, scopes

    @staticmethod
    def routed(scopes: list[dict[str, Any]]) -> bool:
        return "endpoint" in scopes[-1]

    async def test_same_answer_as_the_route(
        self, observed: tuple[httpx.AsyncClient, list[dict[str, Any]]], services: Services
    ) -> None:
        client, scopes = observed
        body = {"user_id": "ana", "type": "follow", "title": "Bo followed you", "data": {"a": 1}}
        fast = await client.post(N, json=body)
        assert not self.routed(scopes)
        routed = await client.post(N, content=json.dumps(body).encode(), headers=PLUS_JSON)
        assert self.routed(scopes)
        assert fast.status_code == routed.status_code == 202, (fast.text, routed.text)
        assert fast.json().keys() == routed.json().keys()
        assert fast.json()["accepted"] == routed.json()["accepted"] == 1
        for h in ("content-type", "ratelimit-limit"):
            assert fast.headers[h] == routed.headers[h], h
        # Whole seconds to the window's end, rounded up: a second boundary may fall
        # between the two sends on a loaded machine.
        assert (
            0 <= int(fast.headers["ratelimit-reset"]) - int(routed.headers["ratelimit-reset"]) <= 1
        )
        assert (
            int(fast.headers["ratelimit-remaining"])
            == int(routed.headers["ratelimit-remaining"]) + 1
        )
        items = (await client.get(N, params={"user_id": "ana"})).json()["items"]
        assert [i["id"] for i in items] == [routed.json()["ids"][0], fast.json()["ids"][0]]
        drop = {"id", "created_at"}
        first, second = ({k: v for k, v in i.items() if k not in drop} for i in items)
        assert first == second
        text = (await client.get("/metrics")).text
        counted = [
            line
            for line in text.splitlines()
            if 'method="POST"' in line and 'route="/api/v1/notifications"' in line
        ]
        assert any('status="202"' in line for line in counted), counted

    async def test_idempotent_replay_on_the_fast_path(
        self, observed: tuple[httpx.AsyncClient, list[dict[str, Any]]]
    ) -> None:
        client, scopes = observed
        h = {"Idempotency-Key": "order-7"}
        body = {"user_id": "ana", "type": "follow", "title": "Bo followed you"}
        first = await client.post(N, json=body, headers=h)
        again = await client.post(N, json=body, headers=h)
        assert not self.routed(scopes)
        assert first.status_code == again.status_code == 202
        assert again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        reused = await client.post(N, json={**body, "user_id": "bo"}, headers=h)
        assert reused.status_code == 422 and err(reused)["code"] == "idempotency_key_reused"
        assert not self.routed(scopes)  # refused by the same service, rendered alike
        count = await client.get(f"{N}/unread-count", params={"user_id": "ana"})
        assert count.json()["unread"] == 1

    @pytest.mark.parametrize(
        ("body", "headers", "status", "code"),
        [
            ({"user_id": "ana", "type": "x"}, {}, 422, "validation_failed"),
            ({"type": "x", "title": "t"}, {}, 422, "validation_failed"),
            ({"user_id": "a", "type": "x", "title": "t", "bogus": 1}, {}, 422, "validation_failed"),
            (
                {"user_id": "a", "type": "x", "title": "t", "channels": ["in_app", "in_app"]},
                {},
                422,
                "validation_failed",
            ),
            (
                {"user_id": "a", "type": "x", "title": "t"},
                {"idempotency-key": "k" * 256},
                422,
                "validation_failed",
            ),
            ("not json", {}, 400, "malformed_json"),
            ("[1, 2]", {}, 422, "validation_failed"),
            (
                {"user_id": "a", "type": "x", "title": "t"},
                {"content-type": "text/plain"},
                422,
                "validation_failed",
            ),
            ('{"user_id": "a", "type": "x", "title": "t\\u0000"}', {}, 422, "validation_failed"),
            ({"user_id": "a", "type": "x", "title": "t" * 2_000_000}, {}, 413, "payload_too_large"),
            (
                {"user_id": "a", "type": "x", "title": "t"},
                {"authorization": "Bearer nope"},
                401,
                "unauthenticated",
            ),
            (
                {"user_id": "a", "type": "x", "title": "t"},
                {"authorization": ""},
                401,
                "unauthenticated",
            ),
        ],
    )
    async def test_refusals_are_the_routes(
        self,
        observed: tuple[httpx.AsyncClient, list[dict[str, Any]]],
        body: Any,
        headers: dict[str, str],
        status: int,
        code: str,
    ) -> None:
        client, scopes = observed
        raw = body if isinstance(body, str) else json.dumps(body)
        sent = {"content-type": "application/json", **headers}
        key = client.headers["Authorization"]
        if sent.get("authorization") == "":
            del sent["authorization"]
            del client.headers["Authorization"]
        r = await client.post(N, content=raw.encode(), headers=sent)
        assert r.status_code == status, r.text
        assert err(r)["code"] == code
        assert status == 413 or self.routed(scopes)  # 413 comes before any route
        client.headers["Authorization"] = key
        count = await client.get(f"{N}/unread-count", params={"user_id": "a"})
        assert count.json()["unread"] == 0  # refused means nothing written

    async def test_a_user_token_is_refused_by_the_route(
        self, observed: tuple[httpx.AsyncClient, list[dict[str, Any]]], services: Services
    ) -> None:
        client, scopes = observed
        token, _ = services.auth.mint_user_token("ana")
        body = {"user_id": "ana", "type": "follow", "title": "t"}
        r = await client.post(N, json=body, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 403 and err(r)["code"] == "forbidden"
        assert self.routed(scopes)

    async def test_errors_after_validation_are_rendered_alike(
        self, observed: tuple[httpx.AsyncClient, list[dict[str, Any]]]
    ) -> None:
        """A valid body naming a stored template that does not exist: the service refuses
        it, on the fast path as on the route."""
        client, scopes = observed
        body = {"user_id": "ana", "type": "x", "template_key": "no.such.template"}
        fast = await client.post(N, json=body)
        assert not self.routed(scopes)
        routed = await client.post(N, content=json.dumps(body).encode(), headers=PLUS_JSON)
        assert self.routed(scopes)
        assert fast.status_code == routed.status_code and fast.status_code >= 400
        assert fast.json() == routed.json()


class TestIdempotency:
    async def test_replay_creates_nothing(self, authed: httpx.AsyncClient) -> None:
        h = {"Idempotency-Key": "order-42"}
        body = {"user_id": "ana", "type": "order", "title": "Shipped"}
        first = await authed.post(N, json=body, headers=h)
        second = await authed.post(N, json=dict(reversed(body.items())), headers=h)
        assert first.status_code == second.status_code == 202
        assert first.json() == second.json()
        assert second.headers["Idempotent-Replayed"] == "true"
        assert "Idempotent-Replayed" not in first.headers
        r = await authed.get(f"{N}/unread-count", params={"user_id": "ana"})
        assert r.json()["unread"] == 1

    async def test_different_body_is_refused(self, authed: httpx.AsyncClient) -> None:
        h = {"Idempotency-Key": "k1"}
        await authed.post(N, json={"user_id": "ana", "type": "o", "title": "A"}, headers=h)
        r = await authed.post(N, json={"user_id": "ana", "type": "o", "title": "B"}, headers=h)
        assert r.status_code == 422 and err(r)["code"] == "idempotency_key_reused"

    async def test_scoped_to_api_key(self, authed: httpx.AsyncClient, services: Services) -> None:
        h = {"Idempotency-Key": "shared"}
        body = {"user_id": "ana", "type": "o", "title": "A"}
        await authed.post(N, json=body, headers=h)
        _id, other = await services.auth.create_api_key("other")
        r = await authed.post(N, json=body, headers={**h, "Authorization": f"Bearer {other}"})
        assert r.status_code == 202 and "Idempotent-Replayed" not in r.headers
        r = await authed.get(f"{N}/unread-count", params={"user_id": "ana"})
        assert r.json()["unread"] == 2

    async def test_concurrent_duplicates(self, authed: httpx.AsyncClient) -> None:
        h = {"Idempotency-Key": "race"}
        body = {"user_ids": [f"u{i}" for i in range(300)], "type": "o", "title": "A"}
        results = await asyncio.gather(*(authed.post(N, json=body, headers=h) for _ in range(4)))
        # The key is claimed in the send's transaction: a duplicate waits for the first
        # send's commit and replays it, instead of a 409 the client must retry.
        assert [r.status_code for r in results] == [202] * 4, [r.text for r in results]
        assert len({tuple(r.json()["ids"]) for r in results}) == 1
        assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in results) == 3
        r = await authed.get(f"{N}/unread-count", params={"user_id": "u5"})
        assert r.json()["unread"] == 1

    async def test_failed_request_frees_the_key(self, authed: httpx.AsyncClient) -> None:
        h = {"Idempotency-Key": "retry-me"}
        bad = {"user_id": "ana", "type": "o", "title": "A", "template": "rich_media"}
        assert (await authed.post(N, json=bad, headers=h)).status_code == 422
        good = {**bad, "media": {"image": "https://example.com/a.png"}}
        assert (await authed.post(N, json=good, headers=h)).status_code == 202


class TestUserTokens:
    async def token(self, authed: httpx.AsyncClient, user: str) -> str:
        r = await authed.post(f"/api/v1/users/{user}/token")
        assert r.status_code == 200, r.text
        return str(r.json()["token"])

    async def test_token_reaches_only_its_user(self, authed: httpx.AsyncClient) -> None:
        (mine,) = (await post(authed, user_id="ana")).json()["ids"]
        (theirs,) = (await post(authed, user_id="bo")).json()["ids"]
        tok = {"Authorization": f"Bearer {await self.token(authed, 'ana')}"}
        c = authed
        r = await c.get(N, headers=tok)  # user_id defaults to the token's user
        assert [i["id"] for i in r.json()["items"]] == [mine]
        assert (await c.get(N, params={"user_id": "bo"}, headers=tok)).status_code == 403
        r = await c.get(f"{N}/unread-count", params={"user_id": "bo"}, headers=tok)
        assert r.status_code == 403
        assert (await c.get(f"{N}/unread-count", headers=tok)).json()["unread"] == 1
        assert (
            await c.post(f"{N}/read-all", params={"user_id": "bo"}, headers=tok)
        ).status_code == 403
        assert (await c.get(f"{N}/{theirs}", headers=tok)).status_code == 404
        for action in ("read", "unread", "seen", "archive", "unarchive"):
            assert (await c.post(f"{N}/{theirs}/{action}", headers=tok)).status_code == 404
        assert (await c.delete(f"{N}/{theirs}", headers=tok)).status_code == 404
        assert (await c.get("/api/v1/users/bo", headers=tok)).status_code == 403
        assert (await c.put("/api/v1/users/bo", json={}, headers=tok)).status_code == 403
        r = await c.post(N, json={"user_id": "ana", "type": "x", "title": "t"}, headers=tok)
        assert r.status_code == 403  # no route lets a user token send
        assert (await c.post("/api/v1/users/bo/token", headers=tok)).status_code == 403
        assert (await c.post("/api/v1/users/ana/token", headers=tok)).status_code == 403
        # bo's notification is untouched; ana can change her own
        r = await c.get(f"{N}/unread-count", params={"user_id": "bo"})
        assert r.json()["unread"] == 1
        assert (await c.post(f"{N}/{mine}/read", headers=tok)).status_code == 200

    async def test_expired_and_forged_tokens(
        self, authed: httpx.AsyncClient, services: Services
    ) -> None:
        import jwt

        expired, _ = services.auth.mint_user_token("ana", ttl_seconds=-5)
        r = await authed.get(N, headers={"Authorization": f"Bearer {expired}"})
        assert r.status_code == 401 and err(r)["code"] == "token_expired"
        forged = jwt.encode(
            {"sub": "ana", "typ": "user", "iss": "clarion", "exp": 2**40},
            "wrong-secret-" + "z" * 32,
            algorithm="HS256",
        )
        r = await authed.get(N, headers={"Authorization": f"Bearer {forged}"})
        assert r.status_code == 401 and err(r)["code"] == "unauthenticated"


async def test_user_profiles(authed: httpx.AsyncClient) -> None:
    r = await authed.put(
        "/api/v1/users/ana",
        json={
            "email": "ana@example.com",
            "timezone": "Europe/Lisbon",
            "phone": "+351 912 345 678",
            "locale": "pt-PT",
            "data": {"plan": "pro"},
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["phone"] == "+351912345678"
    r = await authed.put("/api/v1/users/ana", json={"name": "Ana"})
    assert r.json()["email"] == "ana@example.com" and r.json()["name"] == "Ana"
    assert (await authed.get("/api/v1/users/ana")).json()["timezone"] == "Europe/Lisbon"
    for bad in [
        {"timezone": "Mars/Olympus"},
        {"phone": "12"},
        {"email": "nope"},
        {"locale": "not a locale"},
        {"extra": 1},
    ]:
        r = await authed.put("/api/v1/users/ana", json=bad)
        assert r.status_code == 422, bad
    assert (await authed.get("/api/v1/users/ana")).json()["name"] == "Ana"
    assert (await authed.get("/api/v1/users/nobody")).status_code == 404


async def test_health_and_metrics(client: httpx.AsyncClient, authed: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json()["status"] == "ok"
    assert (await client.get("/readyz")).json()["checks"]["database"] == "ok"
    await post(authed, user_id="ana", type="metric_probe")
    text = (await client.get("/metrics")).text
    assert 'clarion_notifications_accepted_total{type="metric_probe"}' in text
    assert 'route="/api/v1/notifications"' in text
    assert "clarion_http_request_duration_seconds_bucket" in text


@pytest.mark.parametrize(
    "raw",
    [
        b'{"user_id": "ana", "type": "t", "title": "\\udc00 lone"}',
        b'{"user_id": "ana", "type": "t", "title": "t", "data": {"k": "\\ud83d"}}',
        b'{"user_id": "ana", "type": "t", "title": "t", "data": {"\\u0000": 1}}',
        b'{"user_id": "ana", "type": "t", "title": "nul \\u0000 inside"}',
    ],
)
async def test_text_that_cannot_be_stored_is_refused(authed: httpx.AsyncClient, raw: bytes) -> None:
    r = await authed.post(N, content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422 and err(r)["code"] == "validation_failed"
    r = await authed.put(
        "/api/v1/users/ana",
        content=b'{"name": "\\udfff"}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422
    assert (await authed.get(f"{N}/unread-count", params={"user_id": "ana"})).json()["unread"] == 0


async def test_astral_characters_pass(authed: httpx.AsyncClient) -> None:
    raw = (
        b'{"user_id": "ana", "type": "t", "title": "party \\ud83c\\udf89",'
        b' "data": {"e": "\\u00e9"}}'
    )
    r = await authed.post(N, content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 202, r.text
    item = (await authed.get(N, params={"user_id": "ana"})).json()["items"][0]
    assert item["title"] == "party \U0001f389" and item["data"] == {"e": "é"}
