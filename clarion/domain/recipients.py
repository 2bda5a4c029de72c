"""What Clarion stores about reaching a user, as values built from their rows
(``from_row``): the profile, browsers' web push subscriptions, webhook endpoints."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Profile:
    """One row of ``users``: contact details and language/time preferences (the inbox
    counters on the same row are read as ``domain.inbox_state.InboxMarks``)."""

    user_id: str
    email: str | None
    phone: str | None
    locale: str | None
    timezone: str | None
    name: str | None
    data: Mapping[str, Any]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Profile:
        return cls(
            user_id=row["user_id"],
            email=row["email"],
            phone=row["phone"],
            locale=row["locale"],
            timezone=row["timezone"],
            name=row["name"],
            data=row["data"] or {},
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


@dataclass(frozen=True, slots=True)
class WebPushSubscription:
    """One row of ``push_subscriptions``: a browser's ``PushSubscription``."""

    id: str
    user_id: str
    endpoint: str
    p256dh: str
    auth: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> WebPushSubscription:
        return cls(
            id=row["id"],
            user_id=row["user_id"],
            endpoint=row["endpoint"],
            p256dh=row["p256dh"],
            auth=row["auth"],
            created_at=row["created_at"],
        )


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    """One row of ``webhook_endpoints``. ``user_id`` None: every user's notifications;
    ``types`` empty or None: every type."""

    id: str
    url: str
    secret: str
    user_id: str | None
    types: Sequence[str] | None
    description: str | None
    enabled: bool
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> WebhookEndpoint:
        return cls(
            id=row["id"],
            url=row["url"],
            secret=row["secret"],
            user_id=row["user_id"],
            types=row["types"],
            description=row["description"],
            enabled=bool(row["enabled"]),
            disabled_reason=row["disabled_reason"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    def matches(self, type_: str) -> bool:
        """Whether this endpoint takes notifications of ``type_``."""
        return not self.types or type_ in self.types
