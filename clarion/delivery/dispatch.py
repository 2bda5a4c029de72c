"""From a claimed delivery to one channel call: build the message and the contact, send,
and reduce whatever happened to a :class:`Result` the worker records.

Pure apart from the channel call: the data (notification, profile, subscriptions,
endpoint, opt-outs) is loaded by the services layer in one read per batch and handed in as
a :class:`Job`. The channel never sees the database (DESIGN.md).
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from clarion.delivery.channels.base import (
    Contact,
    Outcome,
    PushSubscription,
    RenderedMessage,
    SendResult,
    WebhookTarget,
)
from clarion.delivery.channels.registry import ChannelRegistry
from clarion.domain.content import absolute_media
from clarion.domain.jobs import Job, Result
from clarion.domain.notifications import Notification
from clarion.domain.types import ChannelName, SuppressionReason
from clarion.services.clock import as_utc, utcnow


def _iso(value: datetime | None) -> str | None:
    return None if value is None else as_utc(value).isoformat()


def webhook_payload(
    delivery_id: str, n: Notification, media_base: str | None = None
) -> dict[str, Any]:
    """The JSON a webhook receiver gets: the notification, plus which delivery this is.
    Relative media references are resolved against ``media_base``: a receiver has no
    origin to resolve them against."""
    content = n.content
    media = content.get("media")
    if media_base is not None and isinstance(media, Mapping):
        media = absolute_media(media, media_base)
        content = {**content, "media": media}
    return {
        "delivery_id": delivery_id,
        "event": "notification.created",
        "notification": {
            "id": n.id,
            "user_id": n.user_id,
            "type": n.type,
            "title": n.title,
            "message": n.message,
            "template": n.template,
            "priority": n.priority,
            "media": media,
            "actions": content.get("actions"),
            "content": content,
            "data": n.data,
            "group_key": n.group_key,
            "created_at": _iso(n.created_at),
        },
    }


def _url_of(n: Notification) -> str | None:
    data = n.data
    url = data.get("url") if isinstance(data, Mapping) else None
    return url if isinstance(url, str) and url.startswith(("http://", "https://")) else None


def render(job: Job, media_base: str | None = None) -> RenderedMessage:
    """The notification rendered for every channel (stored templates render upstream and
    store their parts in ``content.rendered`` when present).

    A delivery with ``content`` of its own (a released channel digest: ``title``,
    ``message``, ``count``, ...) says that instead of its notification, in every part."""
    n = job.notification
    assert n is not None
    content = n.content
    parts = content.get("rendered") if isinstance(content, Mapping) else None
    parts = parts if isinstance(parts, Mapping) else {}
    title, text = str(n.title), str(n.message or "")
    url = _url_of(n)
    digest = job.delivery.content
    payload = webhook_payload(job.id, n, media_base)
    if isinstance(digest, Mapping) and "title" in digest:
        title, text = str(digest["title"]), str(digest.get("message") or "")
        parts = {}  # the notification's own renderings describe one item, not the digest
        payload["digest"] = dict(digest)

    def part(name: str, default: str | None) -> str | None:
        value = parts.get(name)
        return value if isinstance(value, str) else default

    body_html = f"<p><strong>{html.escape(title)}</strong></p>"
    if text:
        body_html += f"<p>{html.escape(text)}</p>"
    if url:
        body_html += f'<p><a href="{html.escape(url, quote=True)}">Open</a></p>'
    return RenderedMessage(
        delivery_id=job.id,
        notification_id=n.id,
        user_id=n.user_id,
        type=n.type,
        priority=n.priority,
        title=title,
        text=part("email.text", text) or title,
        html=part("email.html", body_html),
        email_subject=part("email.subject", title),
        push_title=part("push.title", title),
        push_body=part("push.body", text),
        sms_text=part("sms.text", f"{title}: {text}" if text else title),
        url=url,
        payload=payload,
        unsubscribe_url=job.unsubscribe_url,
    )


def render_webhook(job: Job, media_base: str | None = None) -> RenderedMessage:
    """What the webhook channel reads of a rendering (the JSON payload and the ids), without
    the email/push/SMS parts it never uses: a webhook delivery is worth rendering lean."""
    n = job.notification
    assert n is not None
    title, text = str(n.title), str(n.message or "")
    payload = webhook_payload(job.id, n, media_base)
    digest = job.delivery.content
    if isinstance(digest, Mapping) and "title" in digest:
        title, text = str(digest["title"]), str(digest.get("message") or "")
        payload["digest"] = dict(digest)
    return RenderedMessage(
        delivery_id=job.id,
        notification_id=n.id,
        user_id=n.user_id,
        type=n.type,
        priority=n.priority,
        title=title,
        text=text or title,
        url=_url_of(n),
        payload=payload,
    )


def contact(job: Job) -> Contact:
    p = job.profile
    data = p.data if p is not None else {}
    apprise = data.get("apprise_urls") if isinstance(data, Mapping) else None
    urls = tuple(u for u in apprise if isinstance(u, str)) if isinstance(apprise, list) else ()
    ep = job.endpoint
    webhook = None
    if ep is not None and ep.enabled:
        webhook = WebhookTarget(endpoint_id=ep.id, url=ep.url, secret=ep.secret)
    return Contact(
        user_id=job.delivery.user_id,
        email=None if p is None else p.email,
        phone=None if p is None else p.phone,
        locale=None if p is None else p.locale,
        push_subscriptions=tuple(
            PushSubscription(s.endpoint, s.p256dh, s.auth) for s in job.push_subscriptions
        ),
        webhook=webhook,
        apprise_urls=urls,
    )


def _suppressed(job: Job, reason: str, started: datetime) -> Result:
    return Result(job, None, started, 0, suppress_reason=reason)


async def dispatch(job: Job, registry: ChannelRegistry) -> Result:
    """Send one job once. Never raises: every failure becomes a classified result."""
    started = utcnow()
    if job.notification is None:
        return _suppressed(job, "deleted", started)
    if job.opted_out:
        return _suppressed(job, SuppressionReason.PREFERENCE, started)
    channel = registry.get(job.channel)
    if channel is None:
        # Not configured here (e.g. no SMTP host): a permanent fault of this deployment;
        # the delivery goes dead and POST .../retry brings it back once configured.
        return Result(
            job,
            Outcome.PERMANENT,
            started,
            0,
            provider=None,
            detail=f"channel {job.channel!r} is not configured",
        )
    t0 = time.perf_counter()
    try:
        base = registry.media_base_url
        message = (
            render_webhook(job, base) if job.channel == ChannelName.WEBHOOK else render(job, base)
        )
        result: SendResult = await channel.send(message, contact(job))
    except Exception as exc:  # channels classify, but one bug must not kill the worker
        result = SendResult(Outcome.TRANSIENT, job.channel, f"channel raised {type(exc).__name__}")
    latency = int((time.perf_counter() - t0) * 1000)
    if result.outcome is Outcome.NO_CONTACT:
        return Result(
            job,
            Outcome.NO_CONTACT,
            started,
            latency,
            provider=result.provider,
            detail=result.detail,
            suppress_reason=result.suppress_reason or SuppressionReason.NO_CONTACT,
        )
    return Result(
        job,
        result.outcome,
        started,
        latency,
        provider=result.provider,
        detail=result.detail,
        retry_after=result.retry_after,
        gone_subscriptions=result.gone_subscriptions,
        disable_endpoint=result.disable_endpoint,
    )
