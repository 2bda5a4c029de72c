"""Interactive actions: a user clicked a button of an ``interactive`` notification.

A click is recorded as a ``clicked`` event (``data.action_id``), marks the notification
read through :meth:`InboxService.apply` (the one place read state changes), and — when
``action_webhook_url`` is set — tells the application with a POST of
``{notification_id, user_id, action_id, action}``. The webhook runs after the response,
in a tracked task: a slow or down receiver never delays or fails the click, and its
failures are logged. The URL passes the address rules like every outbound URL, the POST
goes to the checked address and redirects are not followed (``webhook_allow_private`` lets
it point at the private network).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import httpx
import orjson

from clarion.config import Settings
from clarion.domain.events import dimensions, event_row
from clarion.domain.types import ChannelName, EventType
from clarion.errors import NotFound
from clarion.services.auth import Principal
from clarion.services.clock import utcnow
from clarion.services.inbox import InboxService
from clarion.services.netguard import BlockedURL, UrlGuard
from clarion.store import events as event_store
from clarion.store import inbox as inbox_store
from clarion.store.db import Database

log = logging.getLogger("clarion.actions")


def find_action(content: Mapping[str, Any] | None, action_id: str) -> dict[str, Any]:
    """The action ``action_id`` of a notification's normalised content, or ``NotFound``."""
    for action in (content or {}).get("actions") or []:
        if isinstance(action, Mapping) and action.get("id") == action_id:
            return dict(action)
    raise NotFound(f"the notification has no action {action_id!r}")


class ActionService:
    def __init__(
        self,
        db: Database,
        inbox: InboxService,
        settings: Settings,
        *,
        guard: UrlGuard | None = None,
    ) -> None:
        self._db = db
        self._inbox = inbox
        self._url = settings.action_webhook_url
        self._timeout = settings.webhook_timeout_seconds
        self._guard = guard or UrlGuard(allow_private=settings.webhook_allow_private)
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def click(
        self, principal: Principal, notification_id: int, action_id: str
    ) -> dict[str, Any]:
        """Record the click, mark read, schedule the webhook; returns the notification."""
        notification = await self._inbox.get(principal, notification_id)  # 404s for others
        action = find_action(notification["content"], action_id)
        async with self._db.begin() as conn:
            row = await inbox_store.get(conn, notification_id)
            await event_store.append(
                conn,
                [
                    event_row(
                        EventType.CLICKED,
                        utcnow(),
                        user_id=notification["user_id"],
                        notification_id=notification_id,
                        dims=dimensions(row),
                        channel=ChannelName.IN_APP,
                        data={"action_id": action_id},
                    )
                ],
            )
        updated = await self._inbox.apply(principal, notification_id, "read")
        if self._url:
            payload = {
                "notification_id": notification_id,
                "user_id": notification["user_id"],
                "action_id": action_id,
                "action": action,
            }
            task = asyncio.create_task(self._call_webhook(self._url, payload))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return updated

    async def _call_webhook(self, url: str, payload: dict[str, Any]) -> None:
        try:
            checked = await self._guard.check(url)
            request = checked.pinned_request(
                "POST",
                headers={"Content-Type": "application/json", "User-Agent": "Clarion"},
                content=orjson.dumps(payload),
            )
            response = await self._http().send(request)
            if 300 <= response.status_code < 400:
                log.warning(
                    "action webhook answered %s for notification %s: redirect not followed",
                    response.status_code,
                    payload["notification_id"],
                )
            elif response.status_code >= 300:
                log.warning(
                    "action webhook answered %s for notification %s",
                    response.status_code,
                    payload["notification_id"],
                )
        except BlockedURL as exc:
            log.warning("action webhook URL refused: %s", exc)
        except httpx.HTTPError as exc:
            log.warning("action webhook failed: %s", type(exc).__name__)
        except Exception:  # a hint for the application; never let it escape the task
            log.exception("action webhook failed")

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # trust_env=False: a proxy would re-resolve the name the guard checked.
            self._client = httpx.AsyncClient(
                timeout=self._timeout, trust_env=False, follow_redirects=False
            )
        return self._client

    async def drain(self) -> None:
        """Wait for webhook calls in flight (tests, shutdown)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        if self._tasks:  # give calls in flight their timeout, then give up on them
            _done, pending = await asyncio.wait(list(self._tasks), timeout=self._timeout)
            for task in pending:
                task.cancel()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
