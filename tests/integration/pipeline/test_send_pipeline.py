"""Preferences, quiet hours, channel rate limits and templates applied at send, on both
databases, through the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from clarion.services.container import Services

from .conftest import deliveries, post, suppressed_events


async def test_opted_out_channel_is_suppressed_with_reason_and_event(
    authed: httpx.AsyncClient, services: Services
) -> None:
    r = await authed.put(
        "/api/v1/notifications/preferences/u1", json={"types": {"follow": {"email": False}}}
    )
    assert r.status_code == 200
    [nid] = (await post(authed, channels=["in_app", "email", "sms"]))["ids"]
    ds = await deliveries(authed, nid)
    assert ds["email"]["status"] == "suppressed" and ds["email"]["reason"] == "preference"
    assert ds["sms"]["status"] == "pending" and ds["sms"]["reason"] is None
    [event] = await suppressed_events(services)
    assert event["notification_id"] == nid and event["channel"] == "email"
    assert event["reason"] == "preference" and event["ntype"] == "follow"


async def test_critical_type_cannot_be_opted_out(
    authed: httpx.AsyncClient, services: Services
) -> None:
    services.settings.critical_types = ["security"]
    await authed.put("/api/v1/notifications/preferences/u1", json={"channels": {"email": False}})
    [nid] = (await post(authed, type="security", channels=["email"]))["ids"]
    assert (await deliveries(authed, nid))["email"]["status"] == "pending"


def _quiet_now(now: datetime | None = None) -> dict[str, object]:
    """Quiet hours that contain the present moment, ending in about an hour (UTC)."""
    now = now or datetime.now(UTC)
    start = (now - timedelta(hours=1)).strftime("%H:%M")
    end = (now + timedelta(hours=1)).strftime("%H:%M")
    return {"quiet_hours": {"start": start, "end": end, "timezone": "UTC"}}


async def test_quiet_hours_defer_email_and_urgent_goes_through(
    authed: httpx.AsyncClient, services: Services
) -> None:
    set_at = datetime.now(UTC)  # the quiet hours end at this minute, an hour on
    await authed.put("/api/v1/notifications/preferences/u1", json=_quiet_now(set_at))
    [nid] = (await post(authed, channels=["in_app", "email"]))["ids"]
    email = (await deliveries(authed, nid))["email"]
    assert email["status"] == "scheduled" and email["reason"] == "quiet_hours"
    until = datetime.fromisoformat(email["next_attempt_at"])
    assert timedelta(minutes=55) < until - datetime.now(UTC) < timedelta(minutes=62)
    assert until.second == 0 and until.minute == (set_at + timedelta(hours=1)).minute
    # Not claimable before its time; the inbox got it at once.
    assert await services.deliveries.claim("w", 10, 30) == []
    assert (await authed.get("/api/v1/notifications?user_id=u1")).json()["items"][0]["id"] == nid

    [urgent] = (await post(authed, channels=["email"], priority="urgent"))["ids"]
    assert (await deliveries(authed, urgent))["email"]["status"] == "pending"
    # Deferred, not suppressed: a held event says until when.
    assert await suppressed_events(services) == []
    [event] = await suppressed_events(services, "held")
    assert event["reason"] == "quiet_hours" and "deferred_until" in event["data"]


async def test_scheduled_delivery_is_claimed_when_due(
    authed: httpx.AsyncClient, services: Services
) -> None:
    await authed.put("/api/v1/notifications/preferences/u1", json=_quiet_now())
    [nid] = (await post(authed, channels=["webhook"]))["ids"]
    later = datetime.now(UTC) + timedelta(hours=2)
    async with services.db.connect() as conn:
        from clarion.store.outbox import claim

        [row] = await claim(conn, worker="w", now=later, lease_until=later, limit=5)
        await conn.rollback()
    assert row.notification_id == nid


async def test_sixth_push_in_an_hour_is_rate_limited(
    authed: httpx.AsyncClient, services: Services
) -> None:
    services.settings.rate_limit_channels = {"push": "5/hour"}
    ids = [(await post(authed, channels=["push"]))["ids"][0] for _ in range(6)]
    statuses = [(await deliveries(authed, nid))["push"] for nid in ids]
    assert [d["status"] for d in statuses[:5]] == ["pending"] * 5
    assert statuses[5]["status"] == "suppressed" and statuses[5]["reason"] == "rate_limited"
    # another user has a budget of their own; urgent is not limited
    [other] = (await post(authed, user_id="u2", channels=["push"]))["ids"]
    assert (await deliveries(authed, other))["push"]["status"] == "pending"
    [urgent] = (await post(authed, channels=["push"], priority="urgent"))["ids"]
    assert (await deliveries(authed, urgent))["push"]["status"] == "pending"
    assert [e["reason"] for e in await suppressed_events(services)] == ["rate_limited"]


TEMPLATE = {
    "key": "follow",
    "kind": "simple",
    "default_locale": "en",
    "bodies": {
        "en": {
            "in_app.title": "{{ data.actor }} followed you",
            "in_app.message": "Say hi to {{ data.actor }}, {{ user.name }}",
            "email.subject": "New follower: {{ data.actor }}",
            "push.title": "New follower",
        },
        "pt": {
            "in_app.title": "{{ data.actor }} começou a seguir você",
            "email.subject": "Novo seguidor: {{ data.actor }}",
        },
    },
}


async def test_template_key_renders_per_locale(
    authed: httpx.AsyncClient, services: Services
) -> None:
    assert (await authed.post("/api/v1/templates", json=TEMPLATE)).status_code == 201
    await authed.put("/api/v1/users/en1", json={"name": "Bo", "locale": "en-GB"})
    await authed.put("/api/v1/users/pt1", json={"name": "Rui", "locale": "pt-BR"})
    body = {
        "user_ids": ["en1", "pt1"],
        "type": "follow",
        "template_key": "follow",
        "data": {"actor": "Ana"},
        "channels": ["in_app", "email"],
    }
    r = await authed.post("/api/v1/notifications", json=body)
    assert r.status_code == 202, r.text
    en_id, pt_id = r.json()["ids"]
    en = (await authed.get(f"/api/v1/notifications/{en_id}")).json()
    pt = (await authed.get(f"/api/v1/notifications/{pt_id}")).json()
    assert en["title"] == "Ana followed you" and en["message"] == "Say hi to Ana, Bo"
    assert en["content"]["rendered"] == {
        "email.subject": "New follower: Ana",
        "push.title": "New follower",
    }
    assert pt["title"] == "Ana começou a seguir você"
    assert pt["content"]["rendered"] == {"email.subject": "Novo seguidor: Ana"}


async def test_unknown_template_or_render_error_writes_nothing(
    authed: httpx.AsyncClient, services: Services
) -> None:
    r = await authed.post(
        "/api/v1/notifications", json={"user_id": "u1", "type": "t", "template_key": "nope"}
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    bad = {**TEMPLATE, "key": "bad", "bodies": {"en": {"in_app.title": "{{ data.x.y.z }}"}}}
    assert (await authed.post("/api/v1/templates", json=bad)).status_code == 201
    r = await authed.post(
        "/api/v1/notifications", json={"user_id": "u1", "type": "t", "template_key": "bad"}
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "template_invalid", r.text
    page = (await authed.get("/api/v1/notifications?user_id=u1")).json()
    assert page["items"] == []


async def test_title_required_without_template(authed: httpx.AsyncClient) -> None:
    r = await authed.post("/api/v1/notifications", json={"user_id": "u1", "type": "t"})
    assert r.status_code == 422
