"""The names a send is made of. Every parameter typed with one of these also takes the
plain string, so a value the server learns later needs no new client."""

from __future__ import annotations

from enum import Enum, StrEnum
from typing import Any


class NotificationType(StrEnum):
    """Common notification types. The type is the application's own event name: any
    string of ``[A-Za-z0-9_.:-]`` (1 to 100 characters) is accepted, and
    ``NotificationType("invoice_paid")`` makes one."""

    FOLLOW = "follow"
    LIKE = "like"
    COMMENT = "comment"
    MENTION = "mention"
    REPLY = "reply"
    SHARE = "share"
    MESSAGE = "message"
    INVITE = "invite"
    REMINDER = "reminder"
    WELCOME = "welcome"
    SYSTEM_ALERT = "system_alert"
    SECURITY_ALERT = "security_alert"
    ACCOUNT_UPDATE = "account_update"
    PAYMENT = "payment"
    ORDER_UPDATE = "order_update"
    PROMOTION = "promotion"

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if not isinstance(value, str):
            return None
        member = str.__new__(cls, value)
        member._name_ = value.upper()
        member._value_ = value
        return member


class NotificationTemplate(StrEnum):
    """The in-app shape of a notification (docs/templates.md)."""

    SIMPLE = "simple"
    RICH_MEDIA = "rich_media"
    INTERACTIVE = "interactive"
    CARD = "card"
    LIST = "list"
    TIMELINE = "timeline"


class NotificationPriority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class DeliveryChannel(StrEnum):
    """``in_app`` is the inbox; every other channel becomes a delivery."""

    IN_APP = "in_app"
    WEBSOCKET = "websocket"
    EMAIL = "email"
    PUSH = "push"
    SMS = "sms"
    WEBHOOK = "webhook"
    APPRISE = "apprise"


def plain(value: Any) -> Any:
    """An enum member as its string; anything else unchanged."""
    return value.value if isinstance(value, Enum) else value
