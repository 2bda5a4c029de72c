# Generated from _async_resources.py by scripts/unasync.py: edit that file, not this one.
"""The async client's operations on users' notifications: sending, the inbox, scheduled
sends, batches, preferences, users and their tokens, push subscriptions, deliveries.
``_sync_resources.py`` is generated from this file by ``scripts/unasync.py``: edit this one.

Each method names the API operation it calls (``@operation``); the request is described
once, by a :class:`~clarion_client._core.Call`."""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter

from clarion_client._core import Call, body, nothing, operation, seg
from clarion_client._sse import SseDecoder, live_event, loads_or_none
from clarion_client._sync_base import Pager, Transport
from clarion_client.enums import (
    DeliveryChannel,
    NotificationPriority,
    NotificationTemplate,
    NotificationType,
)
from clarion_client.errors import error_from_response
from clarion_client.models import (
    Batch,
    BatchDetail,
    BatchRule,
    Cancelled,
    Delivery,
    LiveEvent,
    Notification,
    NotificationDeliveries,
    Page,
    Preferences,
    PushSubscription,
    ScheduledSend,
    SendResult,
    UnreadCount,
    UserProfile,
    UserToken,
)

N = "/api/v1/notifications"
U = "/api/v1/users"
_RULES = TypeAdapter(list[BatchRule])


class Resource:
    def __init__(self, transport: Transport) -> None:
        self._t = transport


class Notifications(Resource):
    @operation("POST", N)
    def send(
        self,
        *,
        type: NotificationType | str,
        title: str | None = None,
        user_id: str | None = None,
        user_ids: Sequence[str] | None = None,
        message: str | None = None,
        template: NotificationTemplate | str | None = None,
        priority: NotificationPriority | str | None = None,
        channels: Sequence[DeliveryChannel | str] | None = None,
        media: Mapping[str, Any] | None = None,
        actions: Sequence[Mapping[str, Any]] | None = None,
        content: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        group_key: str | None = None,
        template_key: str | None = None,
        scheduled_for: datetime | str | None = None,
        cancellation_key: str | None = None,
        idempotency_key: str | None = None,
    ) -> SendResult:
        """Send to ``user_id`` or ``user_ids`` (now, or at ``scheduled_for``). One
        ``Idempotency-Key`` (``idempotency_key``, or a new one) covers every retry."""
        payload = body(
            user_id=user_id,
            user_ids=None if user_ids is None else list(user_ids),
            type=type,
            title=title,
            message=message,
            template=template,
            priority=priority,
            channels=None if channels is None else list(channels),
            media=media,
            actions=None if actions is None else list(actions),
            content=content,
            data=data,
            group_key=group_key,
            template_key=template_key,
            scheduled_for=scheduled_for,
            cancellation_key=cancellation_key,
        )
        call = Call(
            "POST",
            N,
            SendResult.model_validate,
            json=payload,
            keyed=True,
            idempotency_key=idempotency_key,
        )
        return self._t.request(call)

    @operation("GET", N)
    def list(
        self,
        *,
        user_id: str | None = None,
        status: str | None = None,
        archived: str | bool | None = None,
        type: NotificationType | str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Pager[Notification]:
        """A user's inbox, newest first; iterate it for every page."""
        params = {
            "user_id": user_id,
            "status": status,
            "archived": archived,
            "type": type,
            "limit": limit,
        }

        def page(after: str | None) -> Call[Page[Notification]]:
            query = {**params, "cursor": after}
            return Call("GET", N, Page[Notification].model_validate, params=query, idempotent=True)

        return Pager(self._t, page, cursor=cursor)

    @operation("GET", f"{N}/{{notification_id}}")
    def get(self, notification_id: int) -> Notification:
        path = f"{N}/{seg(notification_id)}"
        return self._t.request(Call("GET", path, Notification.model_validate, idempotent=True))

    @operation("GET", f"{N}/unread-count")
    def unread_count(self, user_id: str | None = None) -> UnreadCount:
        call = Call(
            "GET",
            f"{N}/unread-count",
            UnreadCount.model_validate,
            params={"user_id": user_id},
            idempotent=True,
        )
        return self._t.request(call)

    @operation("POST", f"{N}/read-all")
    def read_all(self, user_id: str | None = None) -> UnreadCount:
        call = Call(
            "POST",
            f"{N}/read-all",
            UnreadCount.model_validate,
            params={"user_id": user_id},
            idempotent=True,
        )
        return self._t.request(call)

    def _change(self, notification_id: int, action: str) -> Notification:
        path = f"{N}/{seg(notification_id)}/{action}"
        return self._t.request(Call("POST", path, Notification.model_validate, idempotent=True))

    @operation("POST", f"{N}/{{notification_id}}/read")
    def mark_read(self, notification_id: int) -> Notification:
        return self._change(notification_id, "read")

    @operation("POST", f"{N}/{{notification_id}}/unread")
    def mark_unread(self, notification_id: int) -> Notification:
        return self._change(notification_id, "unread")

    @operation("POST", f"{N}/{{notification_id}}/seen")
    def mark_seen(self, notification_id: int) -> Notification:
        return self._change(notification_id, "seen")

    @operation("POST", f"{N}/{{notification_id}}/archive")
    def archive(self, notification_id: int) -> Notification:
        return self._change(notification_id, "archive")

    @operation("POST", f"{N}/{{notification_id}}/unarchive")
    def unarchive(self, notification_id: int) -> Notification:
        return self._change(notification_id, "unarchive")

    @operation("DELETE", f"{N}/{{notification_id}}")
    def delete(self, notification_id: int) -> None:
        path = f"{N}/{seg(notification_id)}"
        self._t.request(Call("DELETE", path, nothing, idempotent=True))

    @operation("POST", f"{N}/{{notification_id}}/actions/{{action_id}}")
    def click_action(self, notification_id: int, action_id: str) -> Notification:
        """Record a click on an action button (marks the notification read)."""
        path = f"{N}/{seg(notification_id)}/actions/{seg(action_id)}"
        return self._t.request(Call("POST", path, Notification.model_validate))

    @operation("GET", f"{N}/{{notification_id}}/deliveries")
    def deliveries(self, notification_id: int) -> NotificationDeliveries:
        path = f"{N}/{seg(notification_id)}/deliveries"
        return self._t.request(
            Call("GET", path, NotificationDeliveries.model_validate, idempotent=True)
        )

    @operation("POST", f"{N}/deliveries/{{delivery_id}}/retry")
    def retry_delivery(self, delivery_id: str) -> Delivery:
        """Re-queue a dead or failed delivery now (admin)."""
        path = f"{N}/deliveries/{seg(delivery_id)}/retry"
        return self._t.request(Call("POST", path, Delivery.model_validate))

    @operation("GET", f"{N}/stream")
    def stream(self, *, cursor: int | None = None) -> Iterator[LiveEvent]:
        """The user's live inbox over Server-Sent Events (a user token: ``with_token``),
        until the token expires. No reconnects here: the async client's ``live`` resumes."""
        extra = {"Accept": "text/event-stream"}
        if cursor is not None:
            extra["Last-Event-ID"] = str(cursor)
        with self._t.http.stream(
            "GET", self._t.url(f"{N}/stream"), headers=self._t.headers(extra), timeout=None
        ) as response:
            if response.status_code >= 400:
                response.read()
                raise error_from_response(response.status_code, loads_or_none(response.text))
            decoder = SseDecoder()
            for line in response.iter_lines():
                for event, data in decoder.feed(line):
                    frame = live_event(event, data)
                    if frame is not None:
                        yield frame


class Scheduled(Resource):
    @operation("GET", f"{N}/scheduled")
    def list(
        self,
        *,
        user_id: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Pager[ScheduledSend]:
        def page(after: str | None) -> Call[Page[ScheduledSend]]:
            query = {"user_id": user_id, "status": status, "limit": limit, "cursor": after}
            return Call(
                "GET",
                f"{N}/scheduled",
                Page[ScheduledSend].model_validate,
                params=query,
                idempotent=True,
            )

        return Pager(self._t, page, cursor=cursor)

    @operation("GET", f"{N}/scheduled/{{send_id}}")
    def get(self, send_id: str) -> ScheduledSend:
        path = f"{N}/scheduled/{seg(send_id)}"
        return self._t.request(Call("GET", path, ScheduledSend.model_validate, idempotent=True))

    @operation("PATCH", f"{N}/scheduled/{{send_id}}")
    def reschedule(self, send_id: str, scheduled_for: datetime | str) -> ScheduledSend:
        path = f"{N}/scheduled/{seg(send_id)}"
        payload = body(scheduled_for=scheduled_for)
        return self._t.request(
            Call("PATCH", path, ScheduledSend.model_validate, json=payload, idempotent=True)
        )

    @operation("DELETE", f"{N}/scheduled/{{send_id}}")
    def cancel(self, send_id: str) -> None:
        self._t.request(Call("DELETE", f"{N}/scheduled/{seg(send_id)}", nothing))

    @operation("DELETE", f"{N}/scheduled")
    def cancel_by_key(self, cancellation_key: str) -> Cancelled:
        """Cancel every pending send sharing ``cancellation_key``."""
        params = {"cancellation_key": cancellation_key}
        return self._t.request(
            Call(
                "DELETE", f"{N}/scheduled", Cancelled.model_validate, params=params, idempotent=True
            )
        )


class Batches(Resource):
    @operation("GET", f"{N}/batches")
    def list(
        self, *, user_id: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Pager[Batch]:
        def page(after: str | None) -> Call[Page[Batch]]:
            query = {"user_id": user_id, "limit": limit, "cursor": after}
            return Call(
                "GET", f"{N}/batches", Page[Batch].model_validate, params=query, idempotent=True
            )

        return Pager(self._t, page, cursor=cursor)

    @operation("GET", f"{N}/batches/{{batch_id}}")
    def get(self, batch_id: str) -> BatchDetail:
        path = f"{N}/batches/{seg(batch_id)}"
        return self._t.request(Call("GET", path, BatchDetail.model_validate, idempotent=True))

    @operation("POST", f"{N}/batches/{{batch_id}}/flush")
    def flush(self, batch_id: str) -> Batch:
        """Fold the batch into one notification now."""
        path = f"{N}/batches/{seg(batch_id)}/flush"
        return self._t.request(Call("POST", path, Batch.model_validate))

    @operation("DELETE", f"{N}/batches/{{batch_id}}")
    def drop(self, batch_id: str) -> None:
        self._t.request(Call("DELETE", f"{N}/batches/{seg(batch_id)}", nothing))


class BatchingRules(Resource):
    """How notifications of each type are held and folded (docs/batching.md)."""

    @operation("GET", f"{N}/batching/rules")
    def list(self) -> builtins.list[BatchRule]:
        call = Call("GET", f"{N}/batching/rules", _RULES.validate_python, idempotent=True)
        return self._t.request(call)

    @operation("PUT", f"{N}/batching/rules")
    def replace_all(self, rules: Sequence[Mapping[str, Any]]) -> builtins.list[BatchRule]:
        """Replace every rule at once (admin)."""
        payload = [body(**rule) for rule in rules]
        call = Call(
            "PUT", f"{N}/batching/rules", _RULES.validate_python, json=payload, idempotent=True
        )
        return self._t.request(call)

    @operation("PUT", f"{N}/batching/rules/{{type}}")
    def put(self, type: NotificationType | str, **rule: Any) -> BatchRule:
        """Create or replace one type's rule: ``strategy``, ``window_seconds``, ``count``,
        ``frequency``, ``digest_time`` (docs/batching.md)."""
        path = f"{N}/batching/rules/{seg(type)}"
        return self._t.request(
            Call("PUT", path, BatchRule.model_validate, json=body(**rule), idempotent=True)
        )

    @operation("DELETE", f"{N}/batching/rules/{{type}}")
    def delete(self, type: NotificationType | str) -> None:
        path = f"{N}/batching/rules/{seg(type)}"
        self._t.request(Call("DELETE", path, nothing, idempotent=True))


class UserPreferences(Resource):
    @operation("GET", f"{N}/preferences/{{user_id}}")
    def get(self, user_id: str) -> Preferences:
        path = f"{N}/preferences/{seg(user_id)}"
        return self._t.request(Call("GET", path, Preferences.model_validate, idempotent=True))

    @operation("PUT", f"{N}/preferences/{{user_id}}")
    def put(
        self, user_id: str, preferences: Mapping[str, Any] | None = None, **fields: Any
    ) -> Preferences:
        """Replace the user's preferences (fields left out take their defaults):
        ``channels``, ``types``, ``digest``, ``quiet_hours``, ``digest_time``, ``timezone``."""
        path = f"{N}/preferences/{seg(user_id)}"
        payload = body(**{**(preferences or {}), **fields})
        return self._t.request(
            Call("PUT", path, Preferences.model_validate, json=payload, idempotent=True)
        )


class Users(Resource):
    @operation("GET", f"{U}/{{user_id}}")
    def get(self, user_id: str) -> UserProfile:
        path = f"{U}/{seg(user_id)}"
        return self._t.request(Call("GET", path, UserProfile.model_validate, idempotent=True))

    @operation("PUT", f"{U}/{{user_id}}")
    def put(self, user_id: str, **profile: Any) -> UserProfile:
        """Create or update a profile; only the fields given change (``email``, ``phone``,
        ``name``, ``locale``, ``timezone``, ``data``)."""
        path = f"{U}/{seg(user_id)}"
        return self._t.request(
            Call("PUT", path, UserProfile.model_validate, json=body(**profile), idempotent=True)
        )

    @operation("POST", f"{U}/{{user_id}}/token")
    def create_token(self, user_id: str, ttl_seconds: int | None = None) -> UserToken:
        """A user token for a browser or app (and for the async client's ``live``)."""
        path = f"{U}/{seg(user_id)}/token"
        payload = body(ttl_seconds=ttl_seconds) if ttl_seconds is not None else None
        return self._t.request(
            Call("POST", path, UserToken.model_validate, json=payload, idempotent=True)
        )

    @operation("DELETE", f"{U}/{{user_id}}")
    def erase(self, user_id: str) -> None:
        """Erase everything held about the user (admin); repeating it is harmless."""
        self._t.request(Call("DELETE", f"{U}/{seg(user_id)}", nothing, idempotent=True))

    @operation("GET", f"{U}/{{user_id}}/export")
    def export(self, user_id: str) -> dict[str, Any]:
        """Everything held about the user, as one JSON document (admin)."""
        path = f"{U}/{seg(user_id)}/export"
        return self._t.request(Call("GET", path, dict, idempotent=True))

    @operation("POST", f"{U}/{{user_id}}/push-subscriptions")
    def add_push_subscription(
        self, user_id: str, subscription: Mapping[str, Any]
    ) -> PushSubscription:
        """Store a browser's ``PushSubscription.toJSON()``."""
        path = f"{U}/{seg(user_id)}/push-subscriptions"
        return self._t.request(
            Call(
                "POST",
                path,
                PushSubscription.model_validate,
                json=dict(subscription),
                idempotent=True,
            )
        )

    @operation("GET", f"{U}/{{user_id}}/push-subscriptions")
    def push_subscriptions(self, user_id: str) -> list[PushSubscription]:
        path = f"{U}/{seg(user_id)}/push-subscriptions"
        page = self._t.request(
            Call("GET", path, Page[PushSubscription].model_validate, idempotent=True)
        )
        return page.items

    @operation("DELETE", f"{U}/{{user_id}}/push-subscriptions/{{subscription_id}}")
    def delete_push_subscription(self, user_id: str, subscription_id: str) -> None:
        path = f"{U}/{seg(user_id)}/push-subscriptions/{seg(subscription_id)}"
        self._t.request(Call("DELETE", path, nothing, idempotent=True))
