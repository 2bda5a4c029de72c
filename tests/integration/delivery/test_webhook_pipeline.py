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


async def test_fails_then_succeeds(
    authed: httpx.AsyncClient, services: Services, sink: Sink
) -> None:
    sink.script = lambda _p, n: (503, {}) if n < 2 else (200, {})
    await add_webhook(authed, sink.url())
    nid = await send(authed, "u1", ["webhook"])
    await settle(services, [nid])

    hits = sink.at("/hook")
    assert len(hits) == 3
    assert len({h.headers["webhook-id"] for h in hits}) == 1  # retries keep the id
    [d] = (await authed.get(f"/api/v1/notifications/{nid}/deliveries")).json()["deliveries"]
    assert d["status"] == "delivered" and d["attempt_count"] == 3
    outcomes = [a["outcome"] for a in d["attempts"]]
    assert outcomes == ["transient", "transient", "delivered"]
    assert "HTTP 503" in d["attempts"][0]["error"]


async def test_always_failing_ends_dead_with_attempts(
    authed: httpx.AsyncClient, services: Services, sink: Sink
) -> None:
    sink.script = lambda _p, _n: (500, {})
    await add_webhook(authed, sink.url())
    nid = await send(authed, "u1", ["webhook"])
    await settle(services, [nid])

    assert len(sink.at("/hook")) == services.settings.max_attempts == 4
    [d] = (await authed.get(f"/api/v1/notifications/{nid}/deliveries")).json()["deliveries"]
    assert d["status"] == "dead" and d["reason"] == "max_attempts"
    assert [a["attempt"] for a in d["attempts"]] == [1, 2, 3, 4]
    assert all(a["outcome"] == "transient" and "HTTP 500" in a["error"] for a in d["attempts"])

    # Re-queue it: a fresh budget, and this time the receiver is back.
    sink.script = lambda _p, _n: (200, {})
    r = await authed.post(f"/api/v1/notifications/deliveries/{d['id']}/retry")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "pending" and r.json()["attempt_count"] == 0
    await settle(services, [nid])
    [d] = (await authed.get(f"/api/v1/notifications/{nid}/deliveries")).json()["deliveries"]
    assert d["status"] == "delivered"
    # Only dead or failed deliveries can be re-queued.
    r = await authed.post(f"/api/v1/notifications/deliveries/{d['id']}/retry")
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"


async def test_retry_after_is_honoured(
    authed: httpx.AsyncClient, services: Services, sink: Sink
) -> None:
    sink.script = lambda _p, n: (429, {"Retry-After": "1"}) if n == 0 else (200, {})
    await add_webhook(authed, sink.url())
    nid = await send(authed, "u1", ["webhook"])
    await settle(services, [nid])

    first, second = sink.at("/hook")
    # Our own retry delay is at most 0.2 s here; the receiver asked for 1 s.
    assert second.at - first.at >= 0.95


async def test_permanent_error_is_dead_at_once_and_410_disables(
    authed: httpx.AsyncClient, services: Services, sink: Sink
) -> None:
    sink.script = lambda path, _n: (400, {}) if path == "/bad" else (410, {})
    await add_webhook(authed, sink.url("/bad"))
    gone = await add_webhook(authed, sink.url("/gone"))
    nid = await send(authed, "u1", ["webhook"])
    await settle(services, [nid])

    ds = (await authed.get(f"/api/v1/notifications/{nid}/deliveries")).json()["deliveries"]
    assert sorted(d["status"] for d in ds) == ["dead", "dead"]
    assert all(d["reason"] == "permanent" and d["attempt_count"] == 1 for d in ds)
    assert len(sink.at("/bad")) == len(sink.at("/gone")) == 1
    hook = (await authed.get(f"/api/v1/webhooks/{gone['id']}")).json()
    assert hook["enabled"] is False and "410" in hook["disabled_reason"]

    # A disabled endpoint gets no more deliveries.
    nid2 = await send(authed, "u1", ["webhook"])
    await settle(services, [nid2])
    assert len(sink.at("/gone")) == 1


async def test_fan_out_respects_user_and_type_filters(
    authed: httpx.AsyncClient, services: Services, sink: Sink
) -> None:
    await add_webhook(authed, sink.url("/all"))
    await add_webhook(authed, sink.url("/u2"), user_id="u2")
    await add_webhook(authed, sink.url("/likes"), types=["like"])
    await add_webhook(authed, sink.url("/follows"), types=["follow", "like"])
    nid = await send(authed, "u1", ["webhook"])
    await settle(services, [nid])

    assert len(sink.at("/all")) == len(sink.at("/follows")) == 1
    assert sink.at("/u2") == sink.at("/likes") == []
    ds = (await authed.get(f"/api/v1/notifications/{nid}/deliveries")).json()["deliveries"]
    assert len(ds) == 2 and len({d["id"] for d in ds}) == 2
    ids = {h.headers["webhook-id"] for h in sink.hits}
    assert ids == {d["id"] for d in ds}


async def test_no_endpoint_is_suppressed_no_contact(
    authed: httpx.AsyncClient, services: Services
) -> None:
    nid = await send(authed, "u1", ["webhook", "apprise"])
    await settle(services, [nid])
    ds = (await authed.get(f"/api/v1/notifications/{nid}/deliveries")).json()["deliveries"]
    assert {(d["channel"], d["status"], d["reason"]) for d in ds} == {
        ("webhook", "suppressed", "no_contact"),
        ("apprise", "suppressed", "no_contact"),
    }


async def test_unconfigured_channel_is_dead_not_looping(
    authed: httpx.AsyncClient, services: Services
) -> None:
    nid = await send(authed, "u1", ["sms"])  # no CLARION_SMS_BASE_URL here
    await settle(services, [nid])
    [d] = (await authed.get(f"/api/v1/notifications/{nid}/deliveries")).json()["deliveries"]
    assert d["status"] == "dead" and "not configured" in d["last_error"]
