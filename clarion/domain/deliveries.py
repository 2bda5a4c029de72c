"""The outbox's rows as values: a delivery (one notification on one channel) and one
attempt made for it. Built by ``store/outbox.py`` and ``store/attempts.py`` with
``from_row``; the services and the worker read attributes, never column names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clarion.domain.types import ChannelName, DeliveryStatus, HoldStatus


@dataclass(frozen=True, slots=True)
class Delivery:
    """One row of ``deliveries``. ``priority`` is the rank (``Priority.rank``);
    ``content``: what a released channel digest says instead of its notification."""

    id: str
    notification_id: int
    user_id: str
    channel: ChannelName
    status: DeliveryStatus
    priority: int
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    updated_at: datetime
    target: str | None = None
    reason: str | None = None
    last_error: str | None = None
    lease_until: datetime | None = None
    leased_by: str | None = None
    digest_id: str | None = None
    content: Mapping[str, Any] | None = None
    variant: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Delivery:
        return cls(
            id=row["id"],
            notification_id=row["notification_id"],
            user_id=row["user_id"],
            channel=ChannelName(row["channel"]),
            status=DeliveryStatus(row["status"]),
            priority=row["priority"],
            attempts=row["attempts"],
            next_attempt_at=row["next_attempt_at"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            target=row["target"],
            reason=row["reason"],
            last_error=row["last_error"],
            lease_until=row["lease_until"],
            leased_by=row["leased_by"],
            digest_id=row["digest_id"],
            content=row["content"],
            variant=row["variant"],
        )

    @property
    def waiting(self) -> bool:
        """Not finished: it will be claimed (again) at ``next_attempt_at``."""
        return self.status in _WAITING


_WAITING = frozenset({DeliveryStatus.SCHEDULED, DeliveryStatus.PENDING, DeliveryStatus.FAILED})


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One row of ``delivery_attempts``: a call made to a provider."""

    delivery_id: str
    attempt: int
    started_at: datetime
    outcome: str
    latency_ms: int
    provider: str | None
    error: str | None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> DeliveryAttempt:
        return cls(
            delivery_id=row["delivery_id"],
            attempt=row["attempt"],
            started_at=row["started_at"],
            outcome=row["outcome"],
            latency_ms=row["latency_ms"],
            provider=row["provider"],
            error=row["error"],
        )


@dataclass(frozen=True, slots=True)
class ChannelDigest:
    """One row of ``channel_digests``: deliveries of one (user, channel) held over its
    rate limit until ``due_at``; ``delivery_id``: the delivery that carried them."""

    id: str
    user_id: str
    channel: ChannelName
    status: HoldStatus
    opened_at: datetime
    due_at: datetime
    item_count: int
    closed_at: datetime | None = None
    delivery_id: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> ChannelDigest:
        return cls(
            id=row["id"],
            user_id=row["user_id"],
            channel=ChannelName(row["channel"]),
            status=HoldStatus(row["status"]),
            opened_at=row["opened_at"],
            due_at=row["due_at"],
            item_count=row["item_count"],
            closed_at=row["closed_at"],
            delivery_id=row["delivery_id"],
        )
