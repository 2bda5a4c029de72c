"""What a delivery worker is handed and what it hands back: one claimed delivery with the
data needed to send it (:class:`Job`), and the outcome to record (:class:`Result`).

Plain values, shared by the services that claim and record deliveries and the delivery
layer that sends them, so neither has to import the other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from clarion.domain.deliveries import Delivery
from clarion.domain.notifications import Notification
from clarion.domain.recipients import Profile, WebhookEndpoint, WebPushSubscription
from clarion.domain.retry import Outcome
from clarion.domain.types import ChannelName


@dataclass(frozen=True, slots=True)
class Job:
    """One claimed delivery with everything needed to send it."""

    delivery: Delivery
    notification: Notification | None  # None: deleted since it was sent
    profile: Profile | None
    push_subscriptions: Sequence[WebPushSubscription] = ()
    endpoint: WebhookEndpoint | None = None
    opted_out: bool = False
    unsubscribe_url: str | None = None

    @property
    def id(self) -> str:
        return self.delivery.id

    @property
    def channel(self) -> ChannelName:
        return self.delivery.channel

    @property
    def target(self) -> str | None:
        """The row's target, or, for a webhook row the claim expanded, the endpoint it
        chose (written with the result: services/deliveries.py, ``_expand_webhooks``)."""
        if self.delivery.target is not None:
            return self.delivery.target
        return self.endpoint.id if self.endpoint is not None else None


@dataclass(frozen=True, slots=True)
class Result:
    """What the worker writes back for one job."""

    job: Job
    outcome: Outcome | None  # None: no attempt was made (suppressed before sending)
    started_at: datetime
    latency_ms: int
    provider: str | None = None
    detail: str | None = None
    retry_after: float | None = None
    suppress_reason: str | None = None
    gone_subscriptions: tuple[str, ...] = ()
    disable_endpoint: bool = False
    extra: Mapping[Any, Any] = field(default_factory=dict)
