"""The ``websocket`` channel: a live-only, best-effort message (a toast) to the user's open
WebSocket and SSE connections.

Unlike ``in_app`` it keeps nothing: a notification sent only on ``websocket`` is not in
the inbox, not counted as unread, and not replayed when a client resumes from its cursor.
A connection that is not open when the worker sends it never sees it. The delivery is
recorded ``delivered`` with the number of connections the session registry knew of at
that moment, or ``suppressed`` with reason ``not_connected`` when it knew of none.

How far the registry sees: one process sees its own connections; with Redis every node's
(``hub/sessions.py``). Without Redis, several processes (``serve --workers N`` on
PostgreSQL, or a separate ``clarion worker``) still get the toast through PostgreSQL's
NOTIFY, but the worker counts only the connections of its own process.
"""

from __future__ import annotations

import time
from typing import ClassVar

from clarion.delivery.channels.base import Channel, Contact, RenderedMessage, SendResult
from clarion.domain.retry import Outcome
from clarion.domain.types import SuppressionReason
from clarion.hub.hub import Hub
from clarion.services.realtime import frame

#: The frame type clients receive (docs/realtime.md).
TOAST = "notification.toast"


class LiveChannel(Channel):
    name: ClassVar[str] = "websocket"

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def send(self, message: RenderedMessage, contact: Contact) -> SendResult:
        user = contact.user_id
        connections = await self.hub.sessions.count_for(user)  # this node's included
        if connections == 0:
            return SendResult(
                Outcome.NO_CONTACT,
                "websocket",
                "no open connection",
                suppress_reason=str(SuppressionReason.NOT_CONNECTED),
            )
        toast = frame(
            TOAST,
            time.time(),
            id=message.notification_id,
            notification={
                "id": message.notification_id,
                "type": message.type,
                "priority": message.priority,
                "title": message.title,
                "message": message.text,
                "url": message.url,
            },
        )
        await self.hub.broker.publish(user, toast)
        noun = "connection" if connections == 1 else "connections"
        return SendResult(Outcome.DELIVERED, "websocket", f"{connections} {noun}")
