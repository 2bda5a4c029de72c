# Generated from _async_base.py by scripts/unasync.py: edit that file, not this one.
"""The async transport: one request with its retries, and the pager. ``_sync_base.py`` is
generated from this file by ``scripts/unasync.py`` (tests/sdk checks they agree): edit
this one."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Generic, Self, TypeVar

import httpx

from clarion_client._core import (
    Call,
    Options,
    connection_retryable,
    outcome,
    should_retry_error,
)
from clarion_client.errors import APIConnectionError, APITimeoutError, ClarionError
from clarion_client.models import Page

T = TypeVar("T")


class Transport:
    def __init__(
        self, options: Options, http: httpx.Client | None = None, token: str | None = None
    ) -> None:
        self.options = options
        self.token = token
        self._own_http = http is None
        # A client given by the caller (its own proxies, hooks, limits) is used as it is:
        # the URL and headers of each request are complete without it.
        self.http = http or httpx.Client(timeout=options.timeout)

    def with_token(self, token: str) -> Transport:
        """The same connections, acting with a user token instead of the API key."""
        derived = Transport(self.options, self.http, token)
        return derived

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        out = {**self.options.default_headers(), **(extra or {})}
        if self.token is not None:
            out["Authorization"] = f"Bearer {self.token}"
        return out

    def url(self, path: str) -> str:
        return self.options.base_url + path

    def request(self, call: Call[T]) -> T:
        """Send ``call``, retrying what may be retried."""
        headers = self.headers(call.headers)
        policy = self.options.retry
        retry = 0
        while True:
            sent_id = uuid.uuid4().hex
            headers["X-Request-ID"] = sent_id
            failure: ClarionError
            try:
                response = self.http.request(
                    call.method,
                    self.url(call.path),
                    params=call.query(),
                    json=call.json,
                    headers=headers,
                    timeout=self.options.timeout,
                )
            except httpx.TransportError as exc:
                kind = (
                    APITimeoutError
                    if isinstance(exc, httpx.TimeoutException)
                    else APIConnectionError
                )
                failure = kind(f"{type(exc).__name__}: {exc}", request_id=sent_id)
                if retry >= policy.max_retries or not connection_retryable(call, exc):
                    raise failure from exc
            else:
                result = outcome(call, response, sent_id)
                if not isinstance(result, ClarionError):
                    return result
                failure = result
                if retry >= policy.max_retries or not should_retry_error(failure):
                    raise failure
            retry += 1
            time.sleep(policy.delay(retry, failure.retry_after, self.options.rand))

    def close(self) -> None:
        if self._own_http:
            self.http.close()


class Pager(Generic[T]):
    """Every item of a cursor-paged list, fetched page by page as the loop goes:
    ``for item in pager``. ``pager.pages()`` goes page by page; ``first_page()``
    fetches one."""

    def __init__(
        self,
        transport: Transport,
        make: Callable[[str | None], Call[Page[T]]],
        *,
        cursor: str | None = None,
    ) -> None:
        self._transport = transport
        self._make = make
        self._cursor = cursor

    def first_page(self) -> Page[T]:
        return self._transport.request(self._make(self._cursor))

    def pages(self) -> Iterator[Page[T]]:
        cursor = self._cursor
        while True:
            page = self._transport.request(self._make(cursor))
            yield page
            if not page.next_cursor or not page.items:
                return
            cursor = page.next_cursor

    def __iter__(self) -> Iterator[T]:
        for page in self.pages():
            for item in page.items:
                yield item

    def to_list(self, limit: int | None = None) -> list[T]:
        out: list[T] = []
        for item in self:
            out.append(item)
            if limit is not None and len(out) >= limit:
                break
        return out


class Base:
    """The context-manager part of the async client."""

    _transport: Transport

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()
