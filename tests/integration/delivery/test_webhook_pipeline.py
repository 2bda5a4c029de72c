"""Webhook deliveries end to end: API -> outbox -> real worker -> local receiver."""

from __future__ import annotations

import json

import httpx
from standardwebhooks.webhooks import Webhook

from clarion.services.container import Services

from .conftest import Sink, add_webhook, send, settle


async def test_signed_delivery_with_stable_id(
    authed: httpx.AsyncClient, services: Services, sink: Sink
) -> None:
    hook = await add_webhook(authed, sink.url())
    assert hook["secret"].startswith("whsec_")
    nid = await send(authed, "u1", ["in_app", "webhook"], data={"k": 1})
    await settle(services, [nid])

    [hit] = sink.at("/hook")
    payload = Webhook(hook["secret"]).verify(hit.body, hit.headers)
    assert payload["notification"]["id"] == nid
    assert payload["notification"]["data"] == {"k": 1}

    r = await authed.get(f"/api/v1/notifications/{nid}/deliveries")
    assert r.status_code == 200, r.text
    [d] = r.json()["deliveries"]
    assert d["channel"] == "webhook" and d["status"] == "delivered"
    assert d["id"] == hit.headers["webhook-id"] == payload["delivery_id"]
    assert d["target"] == hook["id"]
    [attempt] = d["attempts"]
    assert attempt["outcome"] == "delivered" and attempt["latency_ms"] >= 0
    # The secret is shown once only.
    listed = (await authed.get("/api/v1/webhooks")).json()["items"]
    assert listed and "secret" not in listed[0]
    assert json.loads(hit.body)["event"] == "notification.created"
