"""The product brief's two calls, verbatim, against a real server: configured from
CLARION_URL and CLARION_API_KEY, and with an explicit client."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e


async def test_the_briefs_calls_run_verbatim(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLARION_URL", server.url)
    monkeypatch.setenv("CLARION_API_KEY", server.key)
    from clarion_client import (
        DeliveryChannel,
        NotificationPriority,
        NotificationTemplate,
        NotificationType,
        schedule_notification,
        send_rich_notification,
    )

    future_time = datetime.now(UTC) + timedelta(hours=1)

    await send_rich_notification(
        user_id="user-123", notification_type=NotificationType.FOLLOW,
        title="New Follower", message="John Doe is now following you",
        template=NotificationTemplate.RICH_MEDIA, priority=NotificationPriority.HIGH,
        channels=[DeliveryChannel.IN_APP, DeliveryChannel.PUSH],
        media={"avatar": "john_avatar.jpg"},
        actions=[{"label": "View Profile", "action": "view_profile"}])  # fmt: skip

    await schedule_notification(
        user_id="user-123", notification_type=NotificationType.SYSTEM_ALERT,
        title="Reminder", message="Your session expires in 1 hour", scheduled_for=future_time)  # fmt: skip

    auth = {"Authorization": f"Bearer {server.key}"}
    async with httpx.AsyncClient(base_url=server.url, headers=auth) as http:
        inbox = (await http.get("/api/v1/notifications", params={"user_id": "user-123"})).json()
        scheduled = await http.get(
            "/api/v1/notifications/scheduled", params={"user_id": "user-123"}
        )
    [sent] = inbox["items"]
    assert sent["type"] == "follow" and sent["template"] == "rich_media"
    assert sent["priority"] == "high" and sent["channels"] == ["in_app", "push"]
    assert sent["media"] == {"avatar": "john_avatar.jpg"}
    assert sent["actions"][0]["label"] == "View Profile"
    [later] = scheduled.json()["items"]
    assert later["type"] == "system_alert" and later["title"] == "Reminder"
    assert abs(datetime.fromisoformat(later["scheduled_for"]) - future_time) < timedelta(seconds=1)


async def test_an_explicit_client_is_used(server: Server) -> None:
    from clarion_client import AsyncClient, NotificationType, send_rich_notification

    async with AsyncClient(server.url, server.key) as clarion:
        sent = await send_rich_notification(
            user_id="user-456", notification_type=NotificationType("invoice_paid"),
            title="Paid", client=clarion,
        )  # fmt: skip
        [n] = await clarion.notifications.list(user_id="user-456").to_list()
    assert n.id == sent.ids[0] and n.type == "invoice_paid"
