"""Dispatch without a database: rendering, contacts, and the paths that never reach a
provider (deleted notification, opt-out, unconfigured channel)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from clarion.delivery.channels.registry import ChannelRegistry
from clarion.delivery.dispatch import contact, dispatch, render
from clarion.domain.deliveries import Delivery
from clarion.domain.jobs import Job
from clarion.domain.notifications import Notification
from clarion.domain.recipients import Profile, WebhookEndpoint, WebPushSubscription
from clarion.domain.retry import Outcome
from clarion.domain.types import ChannelName, DeliveryStatus

AT = datetime(2026, 1, 1, tzinfo=UTC)
NOTE_ROW = {
    "id": 42,
    "user_id": "u1",
    "type": "follow",
    "title": "Ana <b>followed</b> you",
    "message": "Say hi",
    "template": "simple",
    "priority": "high",
    "content": {"title": "x"},
    "data": {"url": "https://app.example/n/42", "k": 1},
    "group_key": None,
    "created_at": AT,
    "channels": ["in_app", "email"],
    "template_key": None,
    "experiment_id": None,
    "variant": None,
    "seen_at": None,
    "read_at": None,
    "archived_at": None,
    "forced_unread": False,
    "inbox": True,
}
NOTE = Notification.from_row(NOTE_ROW)


def job(channel: str = "email", **extra: Any) -> Job:
    delivery = Delivery(
        id="d-1",
        notification_id=42,
        user_id="u1",
        channel=ChannelName(channel),
        status=DeliveryStatus.SENDING,
        priority=2,
        attempts=1,
        next_attempt_at=AT,
        created_at=AT,
        updated_at=AT,
    )
    values: dict[str, Any] = {"delivery": delivery, "notification": NOTE, "profile": None}
    values.update(extra)
    return Job(**values)


def test_render_escapes_html_and_keeps_the_delivery_id() -> None:
    msg = render(job(unsubscribe_url="https://c.example/api/v1/unsubscribe/t"))
    assert msg.delivery_id == "d-1" and msg.notification_id == 42
    assert msg.html is not None and "&lt;b&gt;" in msg.html and "<b>" not in msg.html
    assert msg.url == "https://app.example/n/42"
    assert msg.sms_text == "Ana <b>followed</b> you: Say hi"
    assert msg.unsubscribe_url == "https://c.example/api/v1/unsubscribe/t"
    assert msg.payload["delivery_id"] == "d-1"
    assert msg.payload["notification"]["created_at"] == "2026-01-01T00:00:00+00:00"


def test_contact_takes_what_the_profile_has() -> None:
    profile = Profile(
        user_id="u1",
        email="u1@example.org",
        phone="+14155550100",
        locale="en",
        timezone=None,
        name=None,
        data={"apprise_urls": ["json://hooks.example/x", 3]},
        created_at=AT,
        updated_at=AT,
    )
    endpoint = WebhookEndpoint(
        id="e1",
        url="https://h.example/",
        secret="whsec_x",
        user_id=None,
        types=None,
        description=None,
        enabled=True,
        disabled_reason=None,
        created_at=AT,
        updated_at=AT,
    )
    subs = [WebPushSubscription("s1", "u1", "https://push.example/1", "k", "a", AT)]
    c = contact(job(profile=profile, endpoint=endpoint, push_subscriptions=subs))
    assert c.email == "u1@example.org" and c.phone == "+14155550100"
    assert c.apprise_urls == ("json://hooks.example/x",)
    assert c.webhook is not None and c.webhook.endpoint_id == "e1"
    assert [s.endpoint for s in c.push_subscriptions] == ["https://push.example/1"]
    disabled = contact(job(endpoint=replace(endpoint, enabled=False)))
    assert disabled.webhook is None


async def test_paths_that_never_reach_a_provider() -> None:
    registry = ChannelRegistry()
    gone = await dispatch(job(notification=None), registry)
    assert gone.outcome is None and gone.suppress_reason == "deleted"
    opted = await dispatch(job(opted_out=True), registry)
    assert opted.outcome is None and opted.suppress_reason == "preference"
    missing = await dispatch(job("sms"), registry)
    assert missing.outcome is Outcome.PERMANENT and "not configured" in (missing.detail or "")


def test_relative_media_is_absolute_for_receivers() -> None:
    """Webhook receivers and push payloads have no origin to resolve a relative media
    reference against: they get it resolved against the deployment's media base."""
    note = replace(NOTE, content={"title": "x", "media": {"avatar": "john_avatar.jpg"}})
    registry = ChannelRegistry(media_base_url="https://cdn.example/m/")
    base = registry.media_base_url
    msg = render(job(notification=note), base)
    assert msg.payload["notification"]["media"] == {
        "avatar": "https://cdn.example/m/john_avatar.jpg"
    }
    assert msg.payload["notification"]["content"]["media"]["avatar"].startswith("https://")
    # Without a base (a caller rendering for the inbox) the reference stays as sent.
    assert render(job(notification=note)).payload["notification"]["media"] == {
        "avatar": "john_avatar.jpg"
    }
