# Generated from _async_client.py by scripts/unasync.py: edit that file, not this one.
"""The async client's parts shared with the sync one. ``_sync_client.py`` is generated
from this file by ``scripts/unasync.py``: edit this one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Self

import httpx

from clarion_client._core import Options, RetryPolicy
from clarion_client._sync_admin import (
    Analytics,
    Experiments,
    System,
    Templates,
    Unsubscribe,
    Webhooks,
)
from clarion_client._sync_base import Base, Transport
from clarion_client._sync_resources import (
    Batches,
    BatchingRules,
    Notifications,
    Scheduled,
    UserPreferences,
    Users,
)


class ClientBase(Base):
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
        http_client: httpx.Client | None = None,
    ) -> None:
        options = Options.build(
            base_url,
            api_key,
            timeout=timeout,
            max_retries=max_retries,
            retry=retry,
            headers=headers,
        )
        self._bind(Transport(options, http_client))

    def _bind(self, transport: Transport) -> None:
        self._transport = transport
        self.notifications = Notifications(transport)
        self.scheduled = Scheduled(transport)
        self.batches = Batches(transport)
        self.batching_rules = BatchingRules(transport)
        self.preferences = UserPreferences(transport)
        self.users = Users(transport)
        self.templates = Templates(transport)
        self.webhooks = Webhooks(transport)
        self.experiments = Experiments(transport)
        self.analytics = Analytics(transport)
        self.system = System(transport)
        self.unsubscribe = Unsubscribe(transport)

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
