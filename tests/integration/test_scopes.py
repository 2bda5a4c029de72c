"""API-key scopes and per-key rate limits, through the ASGI app on both backends: each
scope's answer to a sample of operations (the fast path included), keys made before
scopes existed, and a key's own limit."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from sqlalchemy import text, update

from clarion.api.operations import OPERATIONS
from clarion.config import Settings
from clarion.domain.types import ApiScope
from clarion.errors import ValidationFailed
from clarion.hub.ratelimit import parse_limit
from clarion.services.auth import hash_key
from clarion.services.container import Services
from clarion.store.migrate import alembic_config, upgrade_sync
from clarion.store.schema import deliveries
from tests.conftest import PG_ADMIN_URL, REDIS_URL, _pg_admin
from tests.integration.test_api import serving

N = "/api/v1/notifications"
PLUS_JSON = {"content-type": "application/vnd.clarion+json"}  # declined by the fast path
SEND = {"user_id": "ana", "type": "follow", "title": "Bo followed you"}

READ, SEND_, ADMIN = ApiScope.READ, ApiScope.SEND, ApiScope.ADMIN
KEYS: dict[str, tuple[str, ...]] = {
    "read": ("read",),
    "send": ("send",),
    "admin": ("admin",),
    "read+send": ("read", "send"),
}


def err(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    return dict(body["error"])


async def _keys(services: Services) -> dict[str, str]:
    out = {}
    for name, scopes in KEYS.items():
        _id, out[name] = await services.auth.create_api_key(name, scopes)
    return out


async def _dead_delivery(client: httpx.AsyncClient, admin: str, services: Services) -> str:
    """A dead email delivery to retry (the worker does not run in these tests)."""
    r = await client.post(N, json={**SEND, "channels": ["in_app", "email"]}, headers=_auth(admin))
    (nid,) = r.json()["ids"]
    r = await client.get(f"{N}/{nid}/deliveries", headers=_auth(admin))
    (delivery,) = r.json()["deliveries"]
    async with services.db.begin() as conn:
        await conn.execute(
            update(deliveries).where(deliveries.c.id == delivery["id"]).values(status="dead")
        )
    return str(delivery["id"])


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# (name, method, path, body, the key scopes that may call it): docs/api.md's table.
def _cases(delivery_id: str) -> list[tuple[str, str, str, Any, frozenset[ApiScope]]]:
    tpl = {"kind": "simple", "bodies": {"en": {"in_app.title": "Hi {{ data.name }}"}}}
    return [
        ("send", "POST", N, SEND, frozenset({SEND_, ADMIN})),
        ("list", "GET", f"{N}?user_id=ana", None, frozenset({READ, SEND_, ADMIN})),
        ("count", "GET", f"{N}/unread-count?user_id=ana", None, frozenset({READ, SEND_, ADMIN})),
        ("read-all", "POST", f"{N}/read-all?user_id=ana", None, frozenset({SEND_, ADMIN})),
        ("mint token", "POST", "/api/v1/users/ana/token", None, frozenset({SEND_, ADMIN})),
        ("template create", "POST", "/api/v1/templates", tpl, frozenset({ADMIN})),
        ("template list", "GET", "/api/v1/templates", None, frozenset({READ, ADMIN})),
        (
            "webhook create",
            "POST",
            "/api/v1/webhooks",
            {"url": "https://93.184.215.14/clarion"},
            frozenset({ADMIN}),
        ),
        ("webhook list", "GET", "/api/v1/webhooks", None, frozenset({READ, ADMIN})),
        ("status", "GET", f"{N}/system/status", None, frozenset({READ, ADMIN})),
        (
            "retry",
            "POST",
            f"{N}/deliveries/{delivery_id}/retry",
            None,
            frozenset({ADMIN}),
        ),
        ("erase", "DELETE", "/api/v1/users/zed", None, frozenset({ADMIN})),
        ("export", "GET", "/api/v1/users/ana/export", None, frozenset({ADMIN})),
    ]


async def test_each_scope_gets_what_the_table_says(
    client: httpx.AsyncClient, services: Services
) -> None:
    keys = await _keys(services)
    delivery_id = await _dead_delivery(client, keys["admin"], services)
    for name, method, path, body, allowed in _cases(delivery_id):
        # The sample agrees with the one list the routes are authorised by.
        route_path = path.split("?")[0].replace(delivery_id, "{delivery_id}")
        for template, rule in OPERATIONS.items():
            if template[0] == method and _matches(template[1], route_path):
                assert rule.granted_by == allowed, name
                break
        else:
            pytest.fail(f"{method} {route_path} is not in OPERATIONS")
        for key_name, scopes in KEYS.items():
            payload = body
            if name == "template create":
                payload = {**body, "key": f"welcome-{key_name.replace('+', '-')}"}
            r = await client.request(method, path, json=payload, headers=_auth(keys[key_name]))
            if allowed & {ApiScope(s) for s in scopes}:
                assert 200 <= r.status_code < 300, (name, key_name, r.status_code, r.text)
            else:
                assert r.status_code == 403, (name, key_name, r.status_code, r.text)
                error = err(r)
                assert error["code"] == "insufficient_scope", (name, key_name)
                needed = sorted(error["details"]["required"])
                assert needed == sorted(
                    s.value for s in allowed if s is not ADMIN or allowed == {ADMIN}
                )
                assert all(f"'{n}'" in error["message"] for n in needed), error
                assert error["details"]["key_scopes"] == sorted(scopes)


def _matches(template: str, path: str) -> bool:
    a, b = template.split("/"), path.split("/")
    return len(a) == len(b) and all(x == y or x.startswith("{") for x, y in zip(a, b, strict=True))


async def test_fast_path_applies_the_same_scopes(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Plainly valid sends and reads are answered without FastAPI once each route was
    seen: a key lacking the scope must be refused there exactly as by the route."""
    keys = await _keys(services)
    admin = _auth(keys["admin"])
    # The first request of each hot route takes FastAPI and teaches the fast path.
    assert (await client.post(N, json=SEND, headers=admin)).status_code == 202
    assert (await client.get(f"{N}/unread-count?user_id=ana", headers=admin)).status_code == 200
    assert (await client.get(f"{N}?user_id=ana", headers=admin)).status_code == 200

    read = _auth(keys["read"])
    fast = await client.post(N, json=SEND, headers=read)
    routed = await client.post(N, content=_json(SEND), headers={**read, **PLUS_JSON})
    assert fast.status_code == routed.status_code == 403
    assert fast.json() == routed.json()
    assert err(fast)["code"] == "insufficient_scope" and "'send'" in err(fast)["message"]

    send = _auth(keys["send"])
    fast = await client.post(N, json=SEND, headers=send)
    routed = await client.post(N, content=_json(SEND), headers={**send, **PLUS_JSON})
    assert fast.status_code == routed.status_code == 202

    # Reads: a non-ASCII user id is declined by the fast path and taken by the route.
    for key in ("read", "send", "read+send"):
        h = _auth(keys[key])
        assert (await client.get(f"{N}/unread-count?user_id=ana", headers=h)).status_code == 200
        assert (await client.get(f"{N}/unread-count?user_id=анна", headers=h)).status_code == 200
        assert (await client.get(f"{N}?user_id=ana", headers=h)).status_code == 200
    counted = await client.get(f"{N}/unread-count?user_id=ana", headers=read)
    assert counted.json() == {"user_id": "ana", "unread": 3, "unseen": 3}

    # A key whose stored scopes grant nothing this version knows is refused everywhere.
    _id, odd = await services.auth.create_api_key("odd", ["read"])
    async with services.db.begin() as conn:
        await conn.execute(
            text("UPDATE api_keys SET scopes = 'analytics' WHERE key_hash = :h"),
            {"h": hash_key(odd)},
        )
    services.auth._cache.clear()
    for path in (f"{N}/unread-count?user_id=ana", f"{N}?user_id=ana"):
        r = await client.get(path, headers=_auth(odd))
        assert r.status_code == 403 and err(r)["code"] == "insufficient_scope"
    r = await client.post(N, json=SEND, headers=_auth(odd))
    assert r.status_code == 403 and err(r)["code"] == "insufficient_scope"


def _json(body: Any) -> bytes:
    import json

    return json.dumps(body).encode()


async def test_user_tokens_are_not_scoped(client: httpx.AsyncClient, services: Services) -> None:
    """A user token acts for its user whatever minted it; a server-only operation stays
    a plain ``forbidden`` for it."""
    keys = await _keys(services)
    r = await client.post("/api/v1/users/ana/token", headers=_auth(keys["send"]))
    token = _auth(r.json()["token"])
    assert (await client.get(f"{N}/unread-count", headers=token)).status_code == 200
    assert (await client.post(f"{N}/read-all", headers=token)).status_code == 200
    for method, path, body in (
        ("POST", N, SEND),
        ("GET", "/api/v1/templates", None),
        ("DELETE", "/api/v1/users/ana", None),
    ):
        r = await client.request(method, path, json=body, headers=token)
        assert r.status_code == 403 and err(r)["code"] == "forbidden", (path, r.text)


async def test_scopes_are_validated_and_listed(services: Services) -> None:
    await services.auth.create_api_key("both", ["read", "send"])
    await services.auth.create_api_key("spaced", ["read send"])
    await services.auth.create_api_key("plain")
    listed = {k["name"]: k for k in await services.auth.list_api_keys()}
    assert listed["both"]["scopes"] == ["read", "send"] == listed["spaced"]["scopes"]
    assert listed["plain"]["scopes"] == ["admin"]  # none given: admin
    assert listed["plain"]["rate_limit"] is None
    with pytest.raises(ValidationFailed, match="unknown scope 'write'"):
        await services.auth.create_api_key("bad", ["write"])
    for bad in ("lots", "0/second", "5/second;100/minute", ""):
        with pytest.raises(ValidationFailed):
            await services.auth.create_api_key("bad", rate_limit=bad)
    assert {k["name"] for k in await services.auth.list_api_keys()} == {"both", "spaced", "plain"}


# --- keys made before scopes existed -----------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def old_database(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A database migrated to the revision before scopes, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        return
    name = f"clarion_scopes_{uuid.uuid4().hex[:8]}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        from tests.conftest import service_missing

        service_missing("PostgreSQL at 127.0.0.1:5432", exc)
    yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_a_key_made_before_scopes_is_admin(old_database: str) -> None:
    command.upgrade(alembic_config(old_database), "0006_fold_by_batch")
    key = "clk_" + "o" * 43

    async def insert_old_key() -> None:
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(old_database)
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO api_keys (id, name, prefix, key_hash, created_at) "
                    "VALUES (:id, 'old', :prefix, :hash, :now)"
                ),
                {
                    "id": str(uuid.uuid4()),
                    "prefix": key[:12],
                    "hash": hash_key(key),
                    "now": datetime.now(UTC),
                },
            )
        await engine.dispose()

    asyncio.run(insert_old_key())
    upgrade_sync(old_database)

    async def use_it() -> None:
        migrated = Settings(
            database_url=old_database,
            secret_key="test-secret-key-" + "x" * 32,
            redis_url=None,
            embedded_worker=False,
            _env_file=None,  # type: ignore[call-arg]
        )
        async with serving(migrated) as (client, services):
            (row,) = await services.auth.list_api_keys()
            assert row["scopes"] == ["admin"] and row["rate_limit"] is None
            principal = await services.auth.authenticate(key)
            assert principal.scopes == frozenset({ApiScope.ADMIN})
            h = _auth(key)
            assert (await client.get("/api/v1/templates", headers=h)).status_code == 200
            assert (await client.post(N, json=SEND, headers=h)).status_code == 202
            assert (await client.delete("/api/v1/users/ana", headers=h)).status_code == 204

    asyncio.run(use_it())


# --- per-key rate limits -----------------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
async def limited(
    request: pytest.FixtureRequest, settings: Settings
) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    """An app counting in process, or in Redis (windows start at the first hit there)."""
    update: dict[str, Any] = {}
    if request.param == "redis":
        update = {"redis_url": REDIS_URL, "redis_prefix": f"clarion-test-{time.monotonic_ns()}"}
    async with serving(settings.model_copy(update=update)) as (client, services):
        link = services.hub.limiter.link
        if request.param == "redis" and (link is None or not link.healthy):
            pytest.skip("Redis at 127.0.0.1:6379 is not reachable")
        yield client, services


async def test_a_key_with_its_own_limit(limited: tuple[httpx.AsyncClient, Services]) -> None:
    """``--rate-limit 5/second``: the 6th request within a second is a 429, through the
    fast path and the routes alike; another key is unaffected."""
    client, services = limited
    _id, other = await services.auth.create_api_key("other")
    paths = [f"{N}/unread-count?user_id=ana", f"{N}?user_id=анна"]  # fast, routed
    for attempt in range(3):
        _id, key = await services.auth.create_api_key(f"five-{attempt}", rate_limit="5/second")
        # In process the windows are whole seconds of the clock: start just after one.
        await asyncio.sleep(1 - time.time() % 1 + 0.01)
        started = time.monotonic()
        answers = [await client.get(paths[i % 2], headers=_auth(key)) for i in range(6)]
        if time.monotonic() - started > 0.9:
            continue  # too slow a machine for one window: try again with a fresh key
        assert [a.status_code for a in answers] == [200] * 5 + [429], [a.text for a in answers]
        assert answers[0].headers["ratelimit-limit"] == "5"
        assert err(answers[-1])["code"] == "rate_limited"
        assert 1 <= int(answers[-1].headers["retry-after"]) <= 2
        unaffected = await client.get(paths[0], headers=_auth(other))
        assert unaffected.status_code == 200
        assert unaffected.headers["ratelimit-limit"] == str(
            parse_limit(services.settings.rate_limit_api).amount
        )
        return
    pytest.fail("six requests never fitted in one second")


async def test_the_default_does_not_throttle_a_backend(
    client: httpx.AsyncClient, api_key: str, services: Services
) -> None:
    """The default guards against a runaway client without throttling a backend: a
    sustained 200 requests/s stays under it, and a burst of 200 passes."""
    default = parse_limit(Settings(_env_file=None).rate_limit_api)  # type: ignore[call-arg]
    assert default.amount / default.get_expiry() >= 200 * 5
    h = _auth(api_key)
    answers = await asyncio.gather(
        *(client.get(f"{N}/unread-count?user_id=u{i % 7}", headers=h) for i in range(200))
    )
    assert {a.status_code for a in answers} == {200}
    remaining = min(int(a.headers["ratelimit-remaining"]) for a in answers)
    assert remaining >= parse_limit(services.settings.rate_limit_api).amount - 200
