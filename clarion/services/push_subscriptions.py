"""Web push subscriptions: a browser's ``PushSubscription``, registered with its user's
token; its endpoint passes the address rules like every URL Clarion contacts."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Any

from clarion.config import Settings
from clarion.domain.recipients import WebPushSubscription
from clarion.errors import NotFound, ValidationFailed
from clarion.services.clock import as_utc, utcnow
from clarion.services.netguard import UrlGuard, admit_target_url, check_target_url
from clarion.store import push_subscriptions as subscription_store
from clarion.store import users as user_store
from clarion.store.db import Database


def _iso(value: datetime | None) -> str | None:
    return None if value is None else as_utc(value).isoformat()


def _b64url_len(value: str, field: str, sizes: tuple[int, ...]) -> None:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValidationFailed(
            f"{field} is not base64url", [{"field": field, "problem": "encoding"}]
        ) from exc
    if len(raw) not in sizes:
        raise ValidationFailed(
            f"{field} has the wrong length", [{"field": field, "problem": "length"}]
        )


def _subscription_json(sub: WebPushSubscription) -> dict[str, Any]:
    return {
        "id": sub.id,
        "user_id": sub.user_id,
        "endpoint": sub.endpoint,
        "created_at": _iso(sub.created_at),
    }


class PushSubscriptionService:
    """Browsers' push subscriptions (``PushSubscription.toJSON()``) per user.

    Endpoints come from browsers with the user's own token, so they pass the address rules
    here (422) and again at every send."""

    def __init__(self, db: Database, settings: Settings, *, guard: UrlGuard | None = None) -> None:
        self._db = db
        self._guard = guard or UrlGuard(allow_private=settings.webhook_allow_private)

    async def add(self, user_id: str, endpoint: str, p256dh: str, auth: str) -> dict[str, Any]:
        check_target_url(endpoint, allow_private=self._guard.allow_private, field="endpoint")
        _b64url_len(p256dh, "keys.p256dh", (65,))
        _b64url_len(auth, "keys.auth", (16,))
        await admit_target_url(self._guard, endpoint, field="endpoint")
        now = utcnow()
        sub = WebPushSubscription(
            id=str(uuid.uuid4()),
            user_id=user_id,
            endpoint=endpoint,
            p256dh=p256dh,
            auth=auth,
            created_at=now,
        )
        async with self._db.begin() as conn:
            await user_store.ensure(conn, [user_id], now)
            stored = await subscription_store.upsert_subscription(conn, sub)
        return _subscription_json(stored)

    async def list(self, user_id: str) -> list[dict[str, Any]]:
        async with self._db.connect() as conn:
            subs = await subscription_store.subscriptions_for(conn, [user_id])
        return [_subscription_json(r) for r in subs[user_id]]

    async def delete(self, user_id: str, subscription_id: str) -> None:
        async with self._db.begin() as conn:
            if not await subscription_store.delete_subscription(conn, user_id, subscription_id):
                raise NotFound("no such push subscription")
