"""Idempotency-Key claims live in the send's own transaction (services/idempotency.py):
duplicates racing through two service instances (two nodes) on one database yield one
notification and the same answer, and a claim left by an older node that committed it
apart from its send is refused with Retry-After only until it is stale."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from clarion.api.app import create_app
from clarion.api.schemas import SendRequest
from clarion.config import Settings
from clarion.services import idempotency as idempotency_service
from clarion.services.clock import utcnow
from clarion.services.container import Services
from clarion.services.idempotency import STALE_AFTER, IdempotencyRequest
from clarion.store import idempotency as idem_store

N = "/api/v1/notifications"


@pytest.fixture
async def second_node(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """Another Services + app on the same database: a second node."""
    svc = Services(settings)
    await svc.start()
    app = create_app(settings, svc)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://node-b.test"
        ) as c:
            yield c
    finally:
        await svc.close()


async def test_duplicates_on_two_nodes_make_one_send(
    authed: httpx.AsyncClient, second_node: httpx.AsyncClient
) -> None:
    second_node.headers["Authorization"] = authed.headers["Authorization"]
    for round_ in range(5):
        h = {"Idempotency-Key": f"race-{round_}"}
        body = {"user_ids": [f"r{round_}-{i}" for i in range(50)], "type": "o", "title": "A"}
        results = await asyncio.gather(
            *(c.post(N, json=body, headers=h) for c in (authed, second_node) * 3)
        )
        assert [r.status_code for r in results] == [202] * 6, [r.text for r in results]
        assert len({tuple(r.json()["ids"]) for r in results}) == 1
        assert sum("Idempotent-Replayed" not in r.headers for r in results) == 1
        for user in (f"r{round_}-0", f"r{round_}-49"):
            count = await authed.get(f"{N}/unread-count", params={"user_id": user})
            assert count.json()["unread"] == 1


async def test_same_key_other_body_in_one_group_is_refused(
    authed: httpx.AsyncClient,
) -> None:
    h = {"Idempotency-Key": "twins"}
    bodies = [{"user_id": "ana", "type": "o", "title": t} for t in ("A", "B")]
    first, second = await asyncio.gather(*(authed.post(N, json=b, headers=h) for b in bodies))
    answers = sorted([first.status_code, second.status_code])
    assert answers == [202, 422], (first.text, second.text)
    refused = first if first.status_code == 422 else second
    assert refused.json()["error"]["code"] == "idempotency_key_reused"
    count = await authed.get(f"{N}/unread-count", params={"user_id": "ana"})
    assert count.json()["unread"] == 1


async def test_a_claim_left_by_an_older_node(
    authed: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Older versions committed a claim (no response yet) before the send; if that node
    died, the claim is refused with Retry-After until STALE_AFTER, then taken over."""
    # The young claim must still be young when the request reaches it: 5 s is a long time
    # on a loaded two-core runner, so the test gives it six times that.
    stale_after = STALE_AFTER * 6
    monkeypatch.setattr(idempotency_service, "STALE_AFTER", stale_after)
    body = {"user_id": "bo", "type": "o", "title": "A"}
    key_id = (await services.auth.list_api_keys())[0]["id"]
    for key, age, fresh in (("young", timedelta(0), True), ("old", stale_after * 2, False)):
        canonical = SendRequest.model_validate(body).model_dump(mode="json")
        req = IdempotencyRequest.build(key_id, key, canonical)
        async with services.db.begin() as conn:
            await idem_store.claim(conn, key_id, key, req.request_hash, utcnow() - age)
        r = await authed.post(N, json=body, headers={"Idempotency-Key": key})
        if fresh:
            assert r.status_code == 409, r.text
            assert r.json()["error"]["code"] == "idempotency_in_progress"
            assert 1 <= int(r.headers["Retry-After"]) <= stale_after.total_seconds()
        else:
            assert r.status_code == 202, r.text
            again = await authed.post(N, json=body, headers={"Idempotency-Key": key})
            assert again.json() == r.json() and again.headers["Idempotent-Replayed"] == "true"
    count = await authed.get(f"{N}/unread-count", params={"user_id": "bo"})
    assert count.json()["unread"] == 1


async def test_scheduled_sends_claim_in_their_transaction(authed: httpx.AsyncClient) -> None:
    when = (utcnow() + timedelta(hours=1)).isoformat()
    body = {"user_id": "cy", "type": "o", "title": "A", "scheduled_for": when}
    h = {"Idempotency-Key": "later"}
    results = await asyncio.gather(*(authed.post(N, json=body, headers=h) for _ in range(3)))
    assert [r.status_code for r in results] == [202] * 3, [r.text for r in results]
    assert len({tuple(r.json()["scheduled"]) for r in results}) == 1
