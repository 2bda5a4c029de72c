"""Health alerts on both databases: a score below the threshold sends one alert per
episode (a webhook notification to the operator user, kept in the outbox like any
other), nothing more while it stays low, and a new one after it recovered and fell again;
the score is exported on /metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select

from clarion.domain.events import event_row
from clarion.domain.types import EventType
from clarion.metrics import HEALTH_SCORE
from clarion.services.container import Services
from clarion.services.health import ALERT_TYPE
from clarion.store import events as event_store
from clarion.store.schema import deliveries, health_alerts, notifications


async def _bad_hour(services: Services, now: datetime) -> None:
    """An hour where most webhook deliveries went dead."""
    rows = []
    for i in range(40):
        kind = EventType.DEAD if i % 2 else EventType.DELIVERED
        rows.append(
            event_row(EventType.ACCEPTED, now, user_id="u", notification_id=i, dims={"ntype": "t"})
        )
        rows.append(
            event_row(
                kind,
                now,
                user_id="u",
                notification_id=i,
                dims={"ntype": "t"},
                channel="webhook",
                provider="webhook",
                reason="http_5xx" if kind == EventType.DEAD else None,
                latency_ms=50,
            )
        )
    async with services.db.begin() as conn:
        await event_store.append(conn, rows)
    await services.rollups.catch_up()


async def _alerts(services: Services) -> list[int]:
    async with services.db.connect() as conn:
        rows = await conn.execute(
            select(notifications.c.id).where(notifications.c.type == ALERT_TYPE)
        )
        return [r[0] for r in rows]


async def test_one_alert_per_episode(services: Services, authed: httpx.AsyncClient) -> None:
    now = datetime.now(UTC)
    await _bad_hour(services, now)
    services.health.threshold = 70
    hook = await authed.post(
        "/api/v1/webhooks",
        json={"url": "https://93.184.215.14/alerts", "user_id": services.health.alert_user},
    )
    assert hook.status_code == 201, hook.text

    score = (await services.health.score(now=now))["score"]
    assert score < 70
    assert HEALTH_SCORE._value.get() == score  # exported on /metrics
    assert await services.health.check(now) == 1
    assert await services.health.check(now + timedelta(minutes=1)) == 0  # same episode
    [alert] = await _alerts(services)
    async with services.db.connect() as conn:
        [webhook] = (
            await conn.execute(select(deliveries).where(deliveries.c.notification_id == alert))
        ).all()
        [episode] = (await conn.execute(select(health_alerts))).all()
    assert webhook.channel == "webhook" and webhook.status == "pending"
    assert episode.open is True and episode.score == score

    # A week later the bad hour is out of every window: the episode ends...
    assert await services.health.check(now + timedelta(days=8)) == 0
    async with services.db.connect() as conn:
        [episode] = (await conn.execute(select(health_alerts))).all()
    assert episode.open is None and episode.ended_at is not None
    # ...and a new fall is a new episode with its own alert.
    assert await services.health.check(now) == 1
    assert len(await _alerts(services)) == 2


async def test_no_alert_when_healthy_or_turned_off(services: Services) -> None:
    now = datetime.now(UTC)
    assert (await services.health.score(now=now))["score"] == 100
    assert await services.health.check(now) == 0
    await _bad_hour(services, now)
    services.health.threshold = 0  # off
    assert await services.health.run_once() == 0
    assert await _alerts(services) == []
