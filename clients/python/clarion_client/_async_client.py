"""The async client's parts shared with the sync one. ``_sync_client.py`` is generated
from this file by ``scripts/unasync.py``: edit this one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Self

import httpx

from clarion_client._async_admin import (
    AsyncAnalytics,
    AsyncExperiments,
    AsyncSystem,
    AsyncTemplates,
    AsyncUnsubscribe,
    AsyncWebhooks,
)
from clarion_client._async_base import AsyncBase, AsyncTransport
from clarion_client._async_resources import (
    AsyncBatches,
    AsyncBatchingRules,
    AsyncNotifications,
    AsyncScheduled,
    AsyncUserPreferences,
    AsyncUsers,
)
from clarion_client._core import Options, RetryPolicy


class AsyncClientBase(AsyncBase):
    """Every operation of Clarion's API, grouped by what it acts on.

    ``base_url`` and ``api_key`` default to ``CLARION_URL`` and ``CLARION_API_KEY``. A
    failed request is retried ``max_retries`` times (connection errors, 408, 409
    ``idempotency_in_progress``, 429, 5xx) after an exponential, jittered wait or the
    server's ``Retry-After``; sends keep one ``Idempotency-Key`` across their retries."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        options = Options.build(
            base_url,
            api_key,
            timeout=timeout,
            max_retries=max_retries,
            retry=retry,
            headers=headers,
        )
        self._bind(AsyncTransport(options, http_client))

    def _bind(self, transport: AsyncTransport) -> None:
        self._transport = transport
        self.notifications = AsyncNotifications(transport)
        self.scheduled = AsyncScheduled(transport)
        self.batches = AsyncBatches(transport)
        self.batching_rules = AsyncBatchingRules(transport)
        self.preferences = AsyncUserPreferences(transport)
        self.users = AsyncUsers(transport)
        self.templates = AsyncTemplates(transport)
        self.webhooks = AsyncWebhooks(transport)
        self.experiments = AsyncExperiments(transport)
        self.analytics = AsyncAnalytics(transport)
        self.system = AsyncSystem(transport)
        self.unsubscribe = AsyncUnsubscribe(transport)

    @property
    def base_url(self) -> str:
        return self._transport.options.base_url

    @property
    def options(self) -> Options:
        return self._transport.options

    def with_token(self, token: str) -> Self:
        """This client acting with a user token (the same connections): for the
        operations a user token may call on its own user's data."""
        view = object.__new__(type(self))
        view._bind(self._transport.with_token(token))
        return view
