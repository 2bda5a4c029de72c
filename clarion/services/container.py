"""The application's services, built once from Settings and closed together.

``api/``, ``delivery/`` and the CLI reach the store and the hub only through this.
"""

from __future__ import annotations

from clarion.config import Settings
from clarion.services.auth import AuthService, resolve_secret
from clarion.services.idempotency import IdempotencyService
from clarion.services.inbox import InboxService
from clarion.services.sending import SendingService
from clarion.services.users import UserService
from clarion.store.db import Database


class Services:
    def __init__(self, settings: Settings, db: Database | None = None) -> None:
        self.settings = settings
        self.db = db or Database(settings.database_url)
        self.auth = AuthService(self.db, settings, resolve_secret(settings))
        self.idempotency = IdempotencyService(self.db, settings.idempotency_ttl_seconds)
        self.inbox = InboxService(self.db)
        self.sending = SendingService(
            self.db, self.idempotency, max_recipients=settings.max_recipients
        )
        self.users = UserService(self.db)

    async def start(self) -> None:
        """Start background parts (hub, workers): none are needed by the inbox itself."""

    async def close(self) -> None:
        await self.db.dispose()
