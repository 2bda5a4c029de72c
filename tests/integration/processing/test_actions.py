"""Action clicks through the API on both backends: a ``clicked`` event, the notification
marked read, the action webhook called on a real local receiver, and 404s for unknown
actions and other users' notifications."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from clarion.config import Settings
from clarion.services.actions import ActionService
from clarion.services.auth import Principal
from clarion.services.container import Services
from clarion.store.schema import events
from tests.integration.channels.conftest import Receiver
from tests.integration.processing.conftest import err, user_client

N = "/api/v1/notifications"
ACTIONS = [
    {"id": "accept", "label": "Accept", "action": "invite.accept:42", "style": "primary"},
    {"id": "view", "label": "View team", "url": "https://app.example.com/teams/7"},
]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


@pytest.fixture
def settings(db_url: str, receiver: Receiver) -> Settings:
    return Settings(
        database_url=db_url,
        secret_key="test-secret-key-" + "x" * 32,
        redis_url=None,
        embedded_worker=False,
        action_webhook_url=receiver.url("/clicked"),
        webhook_allow_private=True,  # the receiver is on 127.0.0.1
        webhook_timeout_seconds=5.0,
        _env_file=None,  # type: ignore[call-arg]
    )


async def invite(client: httpx.AsyncClient, user_id: str = "ana") -> int:
    r = await client.post(
        N,
        json={
            "user_id": user_id,
            "type": "invite",
            "title": "Bo invited you to Design",
            "message": "Join the team?",
            "template": "interactive",
            "actions": ACTIONS,
        },
    )
    assert r.status_code == 202, r.text
    nid: int = r.json()["ids"][0]
    return nid


async def clicks(services: Services, nid: int) -> list[dict[str, Any]]:
    async with services.db.connect() as conn:
        rows = await conn.execute(
            select(events).where(events.c.notification_id == nid, events.c.type == "clicked")
        )
        return [dict(r._mapping) for r in rows]


async def test_click_records_marks_read_and_calls_webhook(
    authed: httpx.AsyncClient, services: Services, receiver: Receiver
) -> None:
    nid = await invite(authed)
    r = await authed.post(f"{N}/{nid}/actions/accept")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == nid and body["status"] == "read" and body["read_at"] is not None
    count = (await authed.get(f"{N}/unread-count", params={"user_id": "ana"})).json()
    assert count["unread"] == 0

    (event,) = await clicks(services, nid)
    assert event["user_id"] == "ana" and event["data"] == {"action_id": "accept"}

    await services.actions.drain()
    (call,) = receiver.at("/clicked")
    assert call.method == "POST" and call.headers["content-type"] == "application/json"
    assert json.loads(call.body) == {
        "notification_id": nid,
        "user_id": "ana",
        "action_id": "accept",
        "action": ACTIONS[0],
    }

    # a second click is another event; the notification stays read
    r = await authed.post(f"{N}/{nid}/actions/view")
    assert r.status_code == 200 and r.json()["status"] == "read"
    assert len(await clicks(services, nid)) == 2


async def test_unknown_action_is_404_and_changes_nothing(
    authed: httpx.AsyncClient, services: Services, receiver: Receiver
) -> None:
    nid = await invite(authed)
    r = await authed.post(f"{N}/{nid}/actions/decline")
    assert r.status_code == 404 and err(r)["code"] == "not_found"
    assert (await authed.get(f"{N}/{nid}")).json()["status"] == "unread"
    assert await clicks(services, nid) == []
    await services.actions.drain()
    assert receiver.at("/clicked") == []

    # a notification without actions has none to click
    r = await authed.post(N, json={"user_id": "ana", "type": "x", "title": "plain"})
    plain = r.json()["ids"][0]
    assert (await authed.post(f"{N}/{plain}/actions/accept")).status_code == 404
    assert (await authed.post(f"{N}/999999/actions/accept")).status_code == 404


async def test_user_tokens_click_their_own_only(
    client: httpx.AsyncClient, authed: httpx.AsyncClient, services: Services
) -> None:
    mine, theirs = await invite(authed, "ana"), await invite(authed, "bo")
    async with await user_client(client, services, "ana") as ana:
        r = await ana.post(f"{N}/{mine}/actions/accept")
        assert r.status_code == 200 and r.json()["status"] == "read"
        r = await ana.post(f"{N}/{theirs}/actions/accept")
        assert r.status_code == 404 and err(r)["code"] == "not_found"
    assert (await authed.get(f"{N}/{theirs}")).json()["status"] == "unread"
    assert await clicks(services, theirs) == []


async def test_webhook_failures_never_fail_the_click(
    authed: httpx.AsyncClient,
    services: Services,
    receiver: Receiver,
    settings: Settings,
    server: Principal,
) -> None:
    nid = await invite(authed)
    receiver.reply("/clicked", 500)
    assert (await authed.post(f"{N}/{nid}/actions/accept")).status_code == 200
    await services.actions.drain()
    assert len(receiver.at("/clicked")) == 1  # tried once; the receiver's 500 is only logged

    # without webhook_allow_private the SSRF guard refuses 127.0.0.1: logged, not called
    guarded = ActionService(
        services.db, services.inbox, settings.model_copy(update={"webhook_allow_private": False})
    )
    try:
        await guarded.click(server, nid, "view")
        await guarded.drain()
    finally:
        await guarded.close()
    assert len(receiver.at("/clicked")) == 1
    assert len(await clicks(services, nid)) == 2
