"""The facts of a notification's life as event rows (docs/analytics.md, "Events").

Every service that writes an event builds it here, so every row has the same columns
(the bulk writer needs that) and the same dimensions: the notification's type, template
kind and key, priority, experiment and variant are copied from the notification when the
event is written, so that rollups and exports never need the notification again (it may
since have been deleted or erased).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clarion.domain.notifications import Notification
from clarion.domain.types import EventType

#: The reason on a delivered/sent event of a notification that has no inbox copy: such
#: deliveries are what reached the user when the inbox did not (the funnel's "delivered").
OUTSIDE_INBOX = "outside_inbox"

#: Keys of a notification row (or of the values about to become one) copied onto events.
_DIMENSIONS = ("ntype", "template", "template_key", "priority", "experiment", "variant")


def dimensions(notification: Notification | Mapping[Any, Any] | None) -> dict[str, Any]:
    """The dimensions of an event about ``notification`` (a stored one, or the values of
    one being written); all ``None`` when the notification is unknown."""
    if notification is None:
        return dict.fromkeys(_DIMENSIONS)
    if isinstance(notification, Notification):
        return {
            "ntype": notification.type,
            "template": _str_or_none(notification.template),
            "template_key": notification.template_key,
            "priority": _str_or_none(notification.priority),
            "experiment": notification.experiment_id,
            "variant": notification.variant,
        }
    return {
        "ntype": notification.get("type"),
        "template": _str_or_none(notification.get("template")),
        "template_key": notification.get("template_key"),
        "priority": _str_or_none(notification.get("priority")),
        "experiment": notification.get("experiment_id"),
        "variant": notification.get("variant"),
    }


@dataclass(frozen=True, slots=True)
class Event:
    """One stored row of ``events``, as read back (a user's history, a notification's
    story). Written as :func:`event_row` mappings: the bulk writer takes those as they
    are. ``channel`` stays text: events outlive the channels configured when they were
    written."""

    id: int
    type: EventType
    notification_id: int | None
    user_id: str | None
    channel: str | None
    data: Mapping[str, Any] | None
    created_at: datetime
    ntype: str | None
    template: str | None
    template_key: str | None
    priority: str | None
    provider: str | None
    reason: str | None
    latency_ms: int | None
    value: float | None
    experiment: str | None
    variant: str | None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Event:
        latency, value = row["latency_ms"], row["value"]
        return cls(
            id=int(row["id"]),
            type=EventType(row["type"]),
            notification_id=row["notification_id"],
            user_id=row["user_id"],
            channel=row["channel"],
            data=row["data"],
            created_at=row["created_at"],
            ntype=row["ntype"],
            template=row["template"],
            template_key=row["template_key"],
            priority=row["priority"],
            provider=row["provider"],
            reason=row["reason"],
            latency_ms=None if latency is None else int(latency),
            value=None if value is None else float(value),
            experiment=row["experiment"],
            variant=row["variant"],
        )


def event_row(
    kind: EventType,
    at: datetime,
    *,
    user_id: str | None,
    notification_id: int | None = None,
    dims: Mapping[str, Any] | None = None,
    channel: str | None = None,
    provider: str | None = None,
    reason: str | None = None,
    latency_ms: int | None = None,
    value: float | None = None,
    data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``events`` row. ``dims`` comes from :func:`dimensions` (shared by every event of
    one notification); ``data`` holds what is not a dimension (an action id, a delivery id,
    a batch id)."""
    d = dims or {}
    return {
        "type": str(kind),
        "notification_id": notification_id,
        "user_id": user_id,
        "channel": None if channel is None else str(channel),
        "ntype": d.get("ntype"),
        "template": d.get("template"),
        "template_key": d.get("template_key"),
        "priority": d.get("priority"),
        "experiment": d.get("experiment"),
        "variant": d.get("variant"),
        "provider": None if provider is None else provider[:40],
        "reason": None if reason is None else str(reason)[:40],
        "latency_ms": None if latency_ms is None else max(0, int(latency_ms)),
        "value": value,
        "data": None if data is None else dict(data),
        "created_at": at,
    }


def elapsed_ms(start: datetime | None, end: datetime) -> int | None:
    """Milliseconds from ``start`` to ``end`` (never negative), ``None`` without a start."""
    if start is None:
        return None
    if (start.tzinfo is None) != (end.tzinfo is None):  # SQLite hands back naive UTC
        start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
    return max(0, int((end - start).total_seconds() * 1000))


_STATUS = re.compile(r"\b([45])\d\d\b")


def failure_class(outcome: str | None, detail: str | None) -> str:
    """A small, fixed vocabulary of why an attempt failed, for counting: ``timeout``,
    ``connection``, ``http_4xx``, ``http_5xx``, ``rate_limited``, else the outcome
    (``transient``/``permanent``). The detail text stays on the attempt row."""
    text = (detail or "").lower()
    if "timeout" in text or "timed out" in text:
        return "timeout"
    if "429" in text or "rate limit" in text:
        return "rate_limited"
    m = _STATUS.search(text)
    if m:
        return f"http_{m.group(1)}xx"
    if "connect" in text or "refused" in text or "unreachable" in text or "dns" in text:
        return "connection"
    return outcome or "unknown"


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
