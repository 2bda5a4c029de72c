"""The client's own rules, without a server: enums, error classes, retry timing, the
generated sync half, and the distribution's version and dependencies."""

from __future__ import annotations

import random
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from clarion_client import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    IdempotencyInProgressError,
    InsufficientScopeError,
    NotificationType,
    RateLimitError,
    RetryPolicy,
    ServerError,
    ServiceUnavailableError,
    TokenExpiredError,
    ValidationError,
    __version__,
)
from clarion_client._core import Call, parse_retry_after, retryable_status
from clarion_client.errors import error_from_response

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "python"


def test_notification_type_takes_any_string() -> None:
    assert NotificationType.FOLLOW == "follow"
    custom = NotificationType("invoice_paid")
    assert custom == "invoice_paid" and custom.value == "invoice_paid"
    assert NotificationType("follow") is NotificationType.FOLLOW


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (401, "token_expired", TokenExpiredError),
        (401, "unauthenticated", AuthenticationError),
        (403, "insufficient_scope", InsufficientScopeError),
        (409, "conflict", ConflictError),
        (409, "idempotency_in_progress", IdempotencyInProgressError),
        (422, "validation_failed", ValidationError),
        (429, "rate_limited", RateLimitError),
        (429, "too_many_live_connections", RateLimitError),
        (503, "storage_unavailable", ServiceUnavailableError),
        (500, "internal", ServerError),
        (502, None, ServerError),
        (415, "unsupported_media_type", BadRequestError),
        (418, "a_code_of_the_future", BadRequestError),
    ],
)
def test_each_error_lands_in_its_family(status: int, code: str | None, cls: type) -> None:
    body = {"error": {"code": code, "message": "m", "details": {"d": 1}, "doc": "/d"}}
    err = error_from_response(status, body if code else "<html>", request_id="r1")
    assert type(err) is cls and isinstance(err, APIStatusError)
    assert (err.status, err.code, err.request_id) == (status, code, "r1")


def test_what_is_retried() -> None:
    assert retryable_status(409, "idempotency_in_progress")
    assert not retryable_status(409, "conflict")
    assert all(retryable_status(s, None) for s in (408, 429, 500, 502, 503, 504))
    assert not any(retryable_status(s, None) for s in (400, 401, 403, 404, 422))


def test_backoff_grows_with_jitter_and_retry_after_is_capped() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=8.0, max_retry_after=30.0)
    rand = random.Random(7).random
    for retry, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (6, 8.0), (9, 8.0)]:
        delays = [policy.delay(retry, None, rand) for _ in range(200)]
        assert ceiling / 2 <= min(delays) and max(delays) <= ceiling
        assert max(delays) - min(delays) > ceiling / 4  # jittered
    assert policy.delay(1, 2.5, rand) == 2.5
    assert policy.delay(1, 3600.0, rand) == 30.0
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None


def test_a_send_key_is_made_once_per_call() -> None:
    call = Call("POST", "/x", dict, keyed=True)
    assert call.idempotent and call.headers["Idempotency-Key"] == call.idempotency_key
    assert Call("POST", "/x", dict, keyed=True).idempotency_key != call.idempotency_key
    assert Call("POST", "/x", dict, idempotency_key="mine").headers["Idempotency-Key"] == "mine"


def test_the_sync_client_is_generated_from_the_async_one() -> None:
    done = subprocess.run(
        [sys.executable, str(CLIENT / "scripts" / "unasync.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_released_with_the_server_and_light() -> None:
    server = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    client = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]
    assert client["version"] == server["version"] == __version__
    assert f"clarion-client=={client['version']}" in server["dependencies"]
    names = sorted(d.split(">")[0].split("=")[0].split("[")[0] for d in client["dependencies"])
    assert names == ["httpx", "pydantic"]
