"""Clarion's Python client: ``Client`` and ``AsyncClient`` for every operation of the
API, the brief's ``send_rich_notification`` and ``schedule_notification``, the enums of
a send, and one exception class per error family. Guide: docs/sdk.md."""

from clarion_client._core import RetryPolicy
from clarion_client._live import LiveStream
from clarion_client._version import __version__
from clarion_client.client import AsyncClient, Client
from clarion_client.enums import (
    DeliveryChannel,
    NotificationPriority,
    NotificationTemplate,
    NotificationType,
)
from clarion_client.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClarionError,
    ConflictError,
    IdempotencyInProgressError,
    IdempotencyKeyReusedError,
    InsufficientScopeError,
    LiveConnectionError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    ServiceUnavailableError,
    TemplateInvalidError,
    TokenExpiredError,
    ValidationError,
)
from clarion_client.helpers import configure, schedule_notification, send_rich_notification

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "AuthenticationError",
    "BadRequestError",
    "ClarionError",
    "Client",
    "ConflictError",
    "DeliveryChannel",
    "IdempotencyInProgressError",
    "IdempotencyKeyReusedError",
    "InsufficientScopeError",
    "LiveConnectionError",
    "LiveStream",
    "NotFoundError",
    "NotificationPriority",
    "NotificationTemplate",
    "NotificationType",
    "PermissionDeniedError",
    "RateLimitError",
    "RetryPolicy",
    "ServerError",
    "ServiceUnavailableError",
    "TemplateInvalidError",
    "TokenExpiredError",
    "ValidationError",
    "__version__",
    "configure",
    "schedule_notification",
    "send_rich_notification",
]
