"""Webhook endpoints: where ``webhook`` deliveries go, managed with an ``admin`` API key.
Each gets a signing secret at creation, shown once in the answer."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from clarion.config import Settings
from clarion.domain.recipients import WebhookEndpoint
from clarion.domain.webhook_secrets import generate_webhook_secret
from clarion.errors import NotFound
from clarion.services.clock import as_utc, utcnow
from clarion.services.netguard import UrlGuard, admit_target_url
from clarion.store import webhook_endpoints as endpoint_store
from clarion.store.db import Database


def _iso(value: datetime | None) -> str | None:
    return None if value is None else as_utc(value).isoformat()


def _endpoint_json(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "user_id": endpoint.user_id,
        "types": endpoint.types,
        "description": endpoint.description,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "created_at": _iso(endpoint.created_at),
    }


class WebhookService:
    """Webhook endpoints (server API keys only): where ``webhook`` deliveries go."""

    def __init__(self, db: Database, settings: Settings, *, guard: UrlGuard | None = None) -> None:
        self._db = db
        self._guard = guard or UrlGuard(allow_private=settings.webhook_allow_private)

    async def create(
        self,
        url: str,
        *,
        user_id: str | None = None,
        types: Sequence[str] | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        """Returns the endpoint with its ``whsec_`` secret: the only time it is shown."""
        await admit_target_url(self._guard, url, field="url")
        now = utcnow()
        secret = generate_webhook_secret()
        endpoint = WebhookEndpoint(
            id=str(uuid.uuid4()),
            url=url,
            secret=secret,
            user_id=user_id,
            types=sorted(set(types)) if types else None,
            description=description,
            enabled=True,
            disabled_reason=None,
            created_at=now,
            updated_at=now,
        )
        async with self._db.begin() as conn:
            await endpoint_store.add_endpoint(conn, endpoint)
        return {**_endpoint_json(endpoint), "secret": secret}

    async def list(self) -> list[dict[str, Any]]:
        async with self._db.connect() as conn:
            return [_endpoint_json(r) for r in await endpoint_store.all_endpoints(conn)]

    async def get(self, endpoint_id: str) -> dict[str, Any]:
        async with self._db.connect() as conn:
            row = await endpoint_store.endpoint(conn, endpoint_id)
        if row is None:
            raise NotFound("no such webhook endpoint")
        return _endpoint_json(row)

    async def delete(self, endpoint_id: str) -> None:
        async with self._db.begin() as conn:
            if not await endpoint_store.delete_endpoint(conn, endpoint_id):
                raise NotFound("no such webhook endpoint")
