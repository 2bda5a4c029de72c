"""Email with one-click unsubscribe against aiosmtpd, and Web Push against a local push
service (410 removes the subscription)."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest

from clarion.api.app import create_app
from clarion.config import Settings
from clarion.delivery.channels.push import generate_vapid_keys
from clarion.services.container import Services
from tests.integration.channels.test_push import Browser

from .conftest import Sink, SmtpServer, send, settle


@pytest.fixture
def settings(db_url: str, smtp_server: SmtpServer) -> Settings:
    from .conftest import delivery_settings

    return delivery_settings(
        db_url,
        smtp_host="127.0.0.1",
        smtp_port=smtp_server.port,
        smtp_from="Clarion <n@clarion.example>",
        vapid_private_key=generate_vapid_keys()[0],
    )


async def _statuses(authed: httpx.AsyncClient, nid: int) -> list[tuple[str, str, str | None]]:
    r = await authed.get(f"/api/v1/notifications/{nid}/deliveries")
    return [(d["channel"], d["status"], d["reason"]) for d in r.json()["deliveries"]]


async def test_one_click_unsubscribe(
    authed: httpx.AsyncClient, services: Services, smtp_server: SmtpServer
) -> None:
    await authed.put("/api/v1/users/u1", json={"email": "u1@example.org"})
    nid = await send(authed, "u1", ["in_app", "email"], message="Say hi")
    await settle(services, [nid])
    [(envelope, msg)] = smtp_server.sink.messages
    assert envelope.rcpt_tos == ["u1@example.org"]
    [d] = (await authed.get(f"/api/v1/notifications/{nid}/deliveries")).json()["deliveries"]
    assert msg["Message-ID"] == f"<{d['id']}@clarion.example>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = msg["List-Unsubscribe"].strip("<>")
    assert url.startswith("https://clarion.example/api/v1/unsubscribe/")
    path = urlsplit(url).path

    # A mail client's POST carries no cookie and no credentials.
    app = create_app(services.settings, services)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://clarion.test"
    ) as anon:
        page = await anon.get(path)  # link scanners GET: nothing changes
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        nid2 = await send(authed, "u1", ["email"])
        await settle(services, [nid2])
        assert await _statuses(authed, nid2) == [("email", "delivered", None)]

        r = await anon.post(
            path,
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 200, r.text
        assert r.json() == {
            "unsubscribed": True,
            "user_id": "u1",
            "type": "follow",
            "channel": "email",
        }
        assert (await anon.post(path)).status_code == 200  # idempotent
        bad = await anon.post(path[:-3] + "xyz")
        assert bad.status_code == 404 and bad.json()["error"]["code"] == "not_found"

    nid3 = await send(authed, "u1", ["email"])
    other_type = await send(authed, "u1", ["email"], type="mention")
    await settle(services, [nid3, other_type])
    assert await _statuses(authed, nid3) == [("email", "suppressed", "preference")]
    assert await _statuses(authed, other_type) == [("email", "delivered", None)]
    assert len(smtp_server.sink.messages) == 3
    # The opt-out is one fact, however often the link is posted.
    await services.rollups.catch_up()
    opted = (await authed.get("/api/v1/notifications/analytics/dashboard")).json()
    assert opted["totals"]["unsubscribed"] == 1
    assert opted["by_type"]["follow"]["unsubscribed"] == 1


async def test_email_without_address_is_suppressed(
    authed: httpx.AsyncClient, services: Services, smtp_server: SmtpServer
) -> None:
    nid = await send(authed, "nobody", ["email"])
    await settle(services, [nid])
    assert await _statuses(authed, nid) == [("email", "suppressed", "no_contact")]
    assert smtp_server.sink.messages == []


async def test_push_delivery_and_410_removes_subscription(
    authed: httpx.AsyncClient, services: Services, sink: Sink
) -> None:
    alive, gone = Browser.new(sink.url("/push/alive")), Browser.new(sink.url("/push/gone"))
    sink.script = lambda path, _n: (201, {}) if path == "/push/alive" else (410, {})
    for browser in (alive, gone):
        sub = browser.subscription()
        r = await authed.post(
            "/api/v1/users/u1/push-subscriptions",
            json={"endpoint": sub.endpoint, "keys": {"p256dh": sub.p256dh, "auth": sub.auth}},
        )
        assert r.status_code == 201, r.text
    nid = await send(authed, "u1", ["push"])
    await settle(services, [nid])

    assert await _statuses(authed, nid) == [("push", "delivered", None)]
    [hit] = sink.at("/push/alive")
    payload = alive.decrypt(hit.body)
    [d] = (await authed.get(f"/api/v1/notifications/{nid}/deliveries")).json()["deliveries"]
    assert payload["delivery_id"] == d["id"] and payload["notification_id"] == nid
    subs = (await authed.get("/api/v1/users/u1/push-subscriptions")).json()["items"]
    assert [s["endpoint"] for s in subs] == [alive.endpoint]

    # Only a gone subscription left: the delivery is dead and the subscription removed.
    r = await authed.delete(f"/api/v1/users/u1/push-subscriptions/{subs[0]['id']}")
    assert r.status_code == 204
    sub = gone.subscription()
    await authed.post(
        "/api/v1/users/u1/push-subscriptions",
        json={"endpoint": sub.endpoint, "keys": {"p256dh": sub.p256dh, "auth": sub.auth}},
    )
    nid2 = await send(authed, "u1", ["push"])
    await settle(services, [nid2])
    assert await _statuses(authed, nid2) == [("push", "dead", "permanent")]
    assert (await authed.get("/api/v1/users/u1/push-subscriptions")).json()["items"] == []
    nid3 = await send(authed, "u1", ["push"])
    await settle(services, [nid3])
    assert await _statuses(authed, nid3) == [("push", "suppressed", "no_contact")]
