"""``Client`` and ``AsyncClient``: one per application, shared by its threads or tasks."""

from __future__ import annotations

from clarion_client._async_client import AsyncClientBase
from clarion_client._core import operation
from clarion_client._live import LiveStream, TokenSource
from clarion_client._sync_client import ClientBase


class Client(ClientBase):
    """The synchronous client: ``with Client() as clarion: clarion.notifications.send(...)``."""


class AsyncClient(AsyncClientBase):
    """The asynchronous client: ``async with AsyncClient() as clarion: ...``."""

    @operation("WS", "/api/v1/ws")
    def live(
        self,
        token: str,
        *,
        cursor: int | None = None,
        renew_token: TokenSource | None = None,
        max_reconnects: int | None = None,
    ) -> LiveStream:
        """A user's live inbox: ``async for event in client.live(token, cursor=...)``.
        Reconnects by itself and resumes after ``stream.cursor``; ``renew_token`` is
        awaited for a new token when the current one expires."""
        return LiveStream(
            self.base_url,
            token,
            cursor=cursor,
            renew_token=renew_token,
            retry=self.options.retry,
            max_reconnects=max_reconnects,
        )
