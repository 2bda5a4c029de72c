"""The module-level calls of the product brief: ``await send_rich_notification(...)`` and
``await schedule_notification(...)``. They use the client given as ``client=``, else the
one set by :func:`configure`, else a client made for the call from ``CLARION_URL`` and
``CLARION_API_KEY``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from clarion_client.client import AsyncClient
from clarion_client.enums import (
    DeliveryChannel,
    NotificationPriority,
    NotificationTemplate,
    NotificationType,
)
from clarion_client.models import SendResult

_default: AsyncClient | None = None


def configure(client: AsyncClient | None = None, **options: Any) -> AsyncClient:
    """Set the client the module-level calls use: ``client``, or one built from
    ``options`` (``base_url``, ``api_key``, ``timeout``, ``max_retries``, ...)."""
    global _default
    _default = client if client is not None else AsyncClient(**options)
    return _default


async def _send(client: AsyncClient | None, fields: dict[str, Any]) -> SendResult:
    chosen = client or _default
    result: SendResult
    if chosen is not None:
        result = await chosen.notifications.send(**fields)
    else:
        async with AsyncClient() as made:
            result = await made.notifications.send(**fields)
    return result


async def send_rich_notification(
    user_id: str,
    notification_type: NotificationType | str,
    title: str,
    message: str = "",
    *,
    template: NotificationTemplate | str = NotificationTemplate.SIMPLE,
    priority: NotificationPriority | str = NotificationPriority.NORMAL,
    channels: Sequence[DeliveryChannel | str] = (DeliveryChannel.IN_APP,),
    media: Mapping[str, Any] | None = None,
    actions: Sequence[Mapping[str, Any]] | None = None,
    content: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
    group_key: str | None = None,
    scheduled_for: datetime | None = None,
    idempotency_key: str | None = None,
    client: AsyncClient | None = None,
) -> SendResult:
    """Send a notification to one user now (or at ``scheduled_for``)."""
    return await _send(
        client,
        {
            "user_id": user_id,
            "type": notification_type,
            "title": title,
            "message": message,
            "template": template,
            "priority": priority,
            "channels": channels,
            "media": media,
            "actions": actions,
            "content": content,
            "data": data,
            "group_key": group_key,
            "scheduled_for": scheduled_for,
            "idempotency_key": idempotency_key,
        },
    )


async def schedule_notification(
    user_id: str,
    notification_type: NotificationType | str,
    title: str,
    message: str = "",
    *,
    scheduled_for: datetime,
    template: NotificationTemplate | str = NotificationTemplate.SIMPLE,
    priority: NotificationPriority | str = NotificationPriority.NORMAL,
    channels: Sequence[DeliveryChannel | str] = (DeliveryChannel.IN_APP,),
    media: Mapping[str, Any] | None = None,
    actions: Sequence[Mapping[str, Any]] | None = None,
    data: Mapping[str, Any] | None = None,
    cancellation_key: str | None = None,
    idempotency_key: str | None = None,
    client: AsyncClient | None = None,
) -> SendResult:
    """Store a send for ``scheduled_for`` (timezone-aware, or naive local time); the
    answer's ``scheduled`` lists the scheduled sends' ids."""
    return await _send(
        client,
        {
            "user_id": user_id,
            "type": notification_type,
            "title": title,
            "message": message,
            "template": template,
            "priority": priority,
            "channels": channels,
            "media": media,
            "actions": actions,
            "data": data,
            "scheduled_for": scheduled_for,
            "cancellation_key": cancellation_key,
            "idempotency_key": idempotency_key,
        },
    )
