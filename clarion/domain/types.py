"""The typed words of the glossary (docs/architecture.md): channels, priorities,
template kinds, delivery states, event kinds. Plain ``StrEnum`` so they serialise as the
strings the API documents."""

from __future__ import annotations

from enum import StrEnum


class ChannelName(StrEnum):
    IN_APP = "in_app"
    WEBSOCKET = "websocket"
    EMAIL = "email"
    PUSH = "push"
    SMS = "sms"
    WEBHOOK = "webhook"
    APPRISE = "apprise"


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"

    @property
    def rank(self) -> int:
        """Bigger is claimed first by workers."""
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {Priority.LOW: 0, Priority.NORMAL: 1, Priority.HIGH: 2, Priority.URGENT: 3}


class TemplateKind(StrEnum):
    SIMPLE = "simple"
    RICH_MEDIA = "rich_media"
    INTERACTIVE = "interactive"
    CARD = "card"
    LIST = "list"
    TIMELINE = "timeline"


class DeliveryStatus(StrEnum):
    SCHEDULED = "scheduled"
    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"
    FAILED = "failed"  # will be retried
    DEAD = "dead"  # out of attempts, or a permanent error
    CANCELLED = "cancelled"
    SUPPRESSED = "suppressed"


class SuppressionReason(StrEnum):
    PREFERENCE = "preference"
    QUIET_HOURS = "quiet_hours"
    RATE_LIMITED = "rate_limited"
    DUPLICATE = "duplicate"
    BATCHED = "batched"
    NO_CONTACT = "no_contact"
    NOT_CONNECTED = "not_connected"  # a websocket toast with no open connection


class EventType(StrEnum):
    """The facts of a notification's life (docs/analytics.md, "Events")."""

    ACCEPTED = "accepted"
    HELD = "held"  # batched, scheduled, deferred by quiet hours, in a channel digest
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    DEAD = "dead"
    SEEN = "seen"
    READ = "read"
    UNREAD = "unread"
    ARCHIVED = "archived"
    UNARCHIVED = "unarchived"
    DELETED = "deleted"
    CLICKED = "clicked"
    DISMISSED = "dismissed"
    SUPPRESSED = "suppressed"
    UNSUBSCRIBED = "unsubscribed"
    CONVERTED = "converted"
    PROMOTED = "promoted"  # an experiment's variant took all traffic


class ApiScope(StrEnum):
    """What a server API key may do (docs/api.md, "Scopes"). ``admin`` grants every
    operation an API key may call; ``send`` also grants the reads of users' own data
    (clarion/api/operations.py says which, per operation)."""

    SEND = "send"
    READ = "read"
    ADMIN = "admin"


class HoldStatus(StrEnum):
    """A batch's or a channel digest's state: collecting, folded into what was sent, or
    dropped unsent (a batch deleted through the API)."""

    OPEN = "open"
    FLUSHED = "flushed"
    DROPPED = "dropped"


class ScheduledStatus(StrEnum):
    """A scheduled send's state (docs/scheduling.md)."""

    SCHEDULED = "scheduled"
    SENT = "sent"
    CANCELLED = "cancelled"
    FAILED = "failed"


class ExperimentStatus(StrEnum):
    """An A/B experiment's state (docs/experiments.md, "An experiment")."""

    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    COMPLETED = "completed"

    @property
    def live(self) -> bool:
        """Deciding what its target's sends get (a completed one sends its winner)."""
        return self in _LIVE_EXPERIMENT


_LIVE_EXPERIMENT = frozenset(
    {ExperimentStatus.RUNNING, ExperimentStatus.PAUSED, ExperimentStatus.COMPLETED}
)
