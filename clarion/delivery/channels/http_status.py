"""Small HTTP helpers shared by the HTTP-based channels (webhook, push, SMS)."""

from __future__ import annotations

import math
import time
from email.utils import parsedate_to_datetime

import httpx

from clarion.delivery.channels.base import Outcome

#: Seconds we are willing to read of an error body, for the detail string.
DETAIL_BYTES = 300


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date (RFC 9110 10.2.3).

    Unparseable or past values yield ``None``/``0`` rather than an error: the header is a
    hint and the retry policy has its own backoff.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def classify_status(status: int) -> Outcome:
    """The common HTTP mapping: 2xx delivered, 408/429/5xx transient, the rest permanent."""
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if status in (408, 425, 429) or status >= 500:
        return Outcome.TRANSIENT
    return Outcome.PERMANENT


def transport_error_detail(exc: httpx.HTTPError) -> str:
    """A short, secret-free description of a transport failure."""
    kind = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return f"timeout ({kind})"
    return f"connection failed ({kind})"


async def read_detail(response: httpx.Response) -> str:
    """The start of a streamed response body, decoded leniently, for diagnostics."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        chunks.append(chunk)
        size += len(chunk)
        if size >= DETAIL_BYTES:
            break
    return b"".join(chunks)[:DETAIL_BYTES].decode("utf-8", "replace").strip()
