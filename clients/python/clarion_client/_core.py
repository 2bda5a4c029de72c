"""What the sync and the async client share: a request described once (:class:`Call`),
the retry rules, the headers, and how an answer becomes a model or an exception. The
two transports (``_async_base``, and ``_sync_base`` generated from it) only move bytes
and sleep."""

from __future__ import annotations

import email.utils
import os
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from clarion_client._version import __version__
from clarion_client.enums import plain
from clarion_client.errors import ClarionError, error_body, error_from_response

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 30.0
#: Statuses worth another try; 409 only with code ``idempotency_in_progress``.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """``max_retries`` tries after the first; the n-th waits ``base * 2**(n-1)`` seconds
    (at most ``max_delay``) with full jitter, or the server's ``Retry-After`` when it
    gives one, capped at ``max_retry_after``."""

    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0

    def delay(self, retry: int, retry_after: float | None, rand: Callable[[], float]) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (retry - 1))
        return ceiling * (0.5 + rand() / 2)  # jitter: half to all of the ceiling


def retryable_status(status: int, code: str | None) -> bool:
    if status == 409:
        return code == "idempotency_in_progress"
    return status in RETRY_STATUSES


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (seconds or an HTTP date); None if absent."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


@dataclass
class Call(Generic[T]):
    """One operation: the request, how to read its answer, and whether it may be repeated.

    ``idempotent`` calls are retried after a connection broke mid-request (the server may
    have acted); others only when the request surely did not arrive, or was refused (a
    refused request changed nothing). ``keyed`` calls carry an ``Idempotency-Key``, made
    once and kept for every retry, which makes them idempotent."""

    method: str
    path: str
    parse: Callable[[Any], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    idempotent: bool = False
    keyed: bool = False
    raw: bool = False  # parse gets the body's text, not its JSON
    idempotency_key: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.keyed and self.idempotency_key is None:
            self.idempotency_key = new_idempotency_key()
        if self.idempotency_key is not None:
            self.headers["Idempotency-Key"] = self.idempotency_key
            self.idempotent = True

    def query(self) -> dict[str, Any] | None:
        if not self.params:
            return None
        return {k: _param(v) for k, v in self.params.items() if v is not None}


def _param(value: Any) -> Any:
    if isinstance(value, datetime):
        return aware(value).isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return plain(value)


def aware(value: datetime) -> datetime:
    """A naive datetime is taken as local time (``datetime.now()``), as Python does."""
    return value if value.tzinfo is not None else value.astimezone()


def new_idempotency_key() -> str:
    return f"clarion-py-{uuid.uuid4()}"


@dataclass(frozen=True)
class Options:
    base_url: str
    api_key: str | None
    timeout: float | httpx.Timeout
    retry: RetryPolicy
    headers: Mapping[str, str]
    rand: Callable[[], float] = random.random

    @classmethod
    def build(
        cls,
        base_url: str | None,
        api_key: str | None,
        *,
        timeout: float | httpx.Timeout | None,
        max_retries: int | None,
        retry: RetryPolicy | None,
        headers: Mapping[str, str] | None,
    ) -> Options:
        url = base_url or os.environ.get("CLARION_URL") or DEFAULT_URL
        key = api_key if api_key is not None else os.environ.get("CLARION_API_KEY")
        policy = retry or RetryPolicy()
        if max_retries is not None:
            policy = RetryPolicy(
                max_retries, policy.base_delay, policy.max_delay, policy.max_retry_after
            )
        return cls(
            base_url=url.rstrip("/"),
            api_key=key or None,
            timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
            retry=policy,
            headers=dict(headers or {}),
        )

    def default_headers(self) -> dict[str, str]:
        out = {"User-Agent": f"clarion-client-python/{__version__}", "Accept": "application/json"}
        if self.api_key:
            out["Authorization"] = f"Bearer {self.api_key}"
        out.update(self.headers)
        return out


def request_id(response: httpx.Response | None, sent: str) -> str:
    if response is not None:
        for name in ("x-request-id", "request-id"):
            if response.headers.get(name):
                return str(response.headers[name])
    return sent


def outcome(call: Call[T], response: httpx.Response, sent_id: str) -> T | ClarionError:
    """The parsed answer, or the error it stands for (raised or retried by the caller)."""
    if response.status_code < 400:
        if call.raw:
            return call.parse(response.text)
        if response.status_code == 204 or not response.content:
            return call.parse(None)
        return call.parse(response.json())
    try:
        payload = response.json()
    except ValueError:
        payload = None
    return error_from_response(
        response.status_code,
        payload,
        request_id=request_id(response, sent_id),
        retry_after=parse_retry_after(response.headers.get("retry-after")),
    )


def should_retry_error(error: ClarionError) -> bool:
    return error.status is not None and retryable_status(error.status, error.code)


def connection_retryable(call: Call[Any], exc: httpx.TransportError) -> bool:
    """A request that never reached the server may always be repeated; one that broke
    after it was sent only when repeating it cannot act twice."""
    never_sent = httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
    return isinstance(exc, never_sent) or call.idempotent


def error_code(payload: Any) -> str | None:
    return error_body(payload)[0]


F = TypeVar("F", bound=Callable[..., Any])


def operation(method: str, path: str) -> Callable[[F], F]:
    """Names the API operation a client method calls (tests/sdk checks that every
    operation of the server has one)."""

    def mark(fn: F) -> F:
        fn.__clarion_operation__ = (method, path)  # type: ignore[attr-defined]
        return fn

    return mark


def seg(value: Any) -> str:
    """A path segment, percent-encoded."""
    return quote(str(plain(value)), safe="")


def body(**fields: Any) -> dict[str, Any]:
    """A JSON body of the given fields, leaving out the Nones; enums become strings and
    datetimes ISO 8601 (naive ones read as local time)."""
    return {k: _json(v) for k, v in fields.items() if v is not None}


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return aware(value).isoformat()
    if isinstance(value, Mapping):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    return plain(value)


def nothing(_: Any) -> None:
    return None


def text(payload: Any) -> str:
    return str(payload)
