"""Typed answers of the API. Every model keeps fields it does not know (``extra="allow"``,
readable as attributes and in ``model_extra``), so a newer server never breaks an older
client; the analytics reports, whose figures grow often, declare only their stable keys."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


class Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Page(Model, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class SendResult(Model):
    """``ids``: notifications written now; ``batched``/``scheduled``: what was held."""

    ids: list[int]
    accepted: int
    batched: list[str] | None = None
    scheduled: list[str] | None = None


class Notification(Model):
    id: int
    user_id: str
    type: str
    title: str
    message: str = ""
    template: str = "simple"
    priority: str = "normal"
    channels: list[str] = []
    media: dict[str, Any] | None = None
    actions: list[dict[str, Any]] | None = None
    content: dict[str, Any] = {}
    data: dict[str, Any] = {}
    group_key: str | None = None
    created_at: str
    seen_at: str | None = None
    read_at: str | None = None
    archived_at: str | None = None
    status: str = "unread"


class UnreadCount(Model):
    user_id: str
    unread: int
    unseen: int


class UserProfile(Model):
    user_id: str
    email: str | None = None
    phone: str | None = None
    name: str | None = None
    locale: str | None = None
    timezone: str | None = None
    data: dict[str, Any] = {}
    created_at: str | None = None
    updated_at: str | None = None


class UserToken(Model):
    token: str
    user_id: str
    expires_in: int


class QuietHours(Model):
    start: str
    end: str
    timezone: str
    weekdays: list[int] = []


class Preferences(Model):
    channels: dict[str, bool] = {}
    types: dict[str, dict[str, bool]] = {}
    digest: dict[str, str] = {}
    quiet_hours: QuietHours | None = None
    digest_time: str | None = None
    timezone: str | None = None


class PushSubscription(Model):
    id: str
    user_id: str
    endpoint: str
    created_at: str


class Template(Model):
    key: str
    kind: str
    bodies: dict[str, dict[str, str]]
    default_locale: str
    description: str | None = None
    version: int
    created_at: str
    updated_at: str


class TemplatePreview(Model):
    key: str
    locale: str
    parts: dict[str, str]
    channels: dict[str, dict[str, str]] = {}


class BatchRule(Model):
    type: str
    strategy: str
    window_seconds: int | None = None
    count: int | None = None
    frequency: str | None = None
    digest_time: str | None = None


class Batch(Model):
    id: str
    key: str
    user_id: str
    type: str
    group_key: str | None = None
    status: str
    rule: dict[str, Any] = {}
    item_count: int
    opened_at: str
    flush_at: str | None = None
    notification_id: int | None = None


class BatchItem(Model):
    id: int
    title: str
    message: str = ""
    actor: dict[str, str] | None = None
    data: dict[str, Any] = {}
    created_at: str
    folded_into: int | None = None


class BatchDetail(Batch):
    items: list[BatchItem] = []


class ScheduledSend(Model):
    id: str
    user_id: str
    scheduled_for: str
    status: str
    cancellation_key: str | None = None
    type: str | None = None
    title: str | None = None
    priority: str | None = None
    channels: list[str] | None = None
    notification_id: int | None = None
    error: str | None = None
    created_at: str


class Cancelled(Model):
    cancelled: int


class DeliveryAttempt(Model):
    attempt: int
    at: str
    outcome: str
    latency_ms: int
    provider: str | None = None
    error: str | None = None


class Delivery(Model):
    id: str
    channel: str
    target: str | None = None
    status: str
    reason: str | None = None
    attempt_count: int = 0
    next_attempt_at: str | None = None
    last_error: str | None = None
    created_at: str
    updated_at: str
    attempts: list[DeliveryAttempt] = []


class NotificationDeliveries(Model):
    notification_id: int
    deliveries: list[Delivery]


class Webhook(Model):
    id: str
    url: str
    user_id: str | None = None
    types: list[str] | None = None
    description: str | None = None
    enabled: bool = True
    disabled_reason: str | None = None
    created_at: str


class WebhookCreated(Webhook):
    secret: str


class Conversion(Model):
    notification_id: int | None = None
    user_id: str
    name: str
    value: float | None = None
    created_at: str
    attributed: bool


class Experiment(Model):
    id: str
    name: str
    status: str
    target_type: str | None = None
    target_template: str | None = None
    variants: list[dict[str, Any]] = []
    control: str | None = None
    winner: str | None = None
    planned_per_arm: int | None = None


class ExperimentResults(Model):
    """Per arm figures, the sample-ratio check (``srm``) and the verdict (its ``state``:
    ``running``, ``winner``, ``no_difference``, ``invalid``); docs/experiments.md defines
    each figure."""

    experiment: Experiment | None = None
    verdict: dict[str, Any] = {}
    control: str | None = None
    winner: str | None = None
    metric: str | None = None
    arms: list[dict[str, Any]] = []
    srm: dict[str, Any] | None = None


class SystemStatus(Model):
    status: str
    reasons: list[str] = []
    node_id: str | None = None
    database: dict[str, Any] = {}
    redis: dict[str, Any] | None = None
    broker: dict[str, Any] = {}
    connections: dict[str, Any] = {}
    outbox: dict[str, int] = {}


class Dashboard(Model):
    """Totals, rates, funnel, breakdowns, latency, outbox, health (docs/analytics.md)."""


class UserMetrics(Model):
    user_id: str | None = None


class HealthScore(Model):
    score: float
    components: list[dict[str, Any]] = []


class Trends(Model):
    """A series with the previous period beside it and anomalies flagged."""


class LiveCounters(Model):
    """One second of events, from the analytics live stream."""

    at: str
    accepted: int = 0
    delivered: int = 0
    failed: int = 0
    read: int = 0
    by_event: dict[str, int] = {}


class LiveEvent(Model):
    """One frame of a user's live stream (docs/realtime.md): ``notification.created``
    (``id``, ``notification``, ``replay``), ``notification.updated`` (``change``, ``id``,
    ``notification``), ``unread_count`` (``unread``, ``unseen``), ``ack``, ``error``,
    ``resync_required``."""

    type: str
    ts: float | None = None
    id: int | None = None
    notification: Notification | None = None
    replay: bool | None = None
    change: str | None = None
    unread: int | None = None
    unseen: int | None = None
    code: str | None = None
    message: str | None = None
