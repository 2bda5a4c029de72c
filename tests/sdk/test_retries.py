"""Retries are safe and bounded: a send whose server is killed before it could answer is
retried with the same Idempotency-Key against the restarted server and exists once;
429 and 503 are waited out by their Retry-After (capped); what must not be retried is not."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from clarion_client import (
    APIConnectionError,
    Client,
    ConflictError,
    IdempotencyInProgressError,
    RetryPolicy,
    ServiceUnavailableError,
    ValidationError,
)
from tests.e2e.conftest import Server, clarion_env, run_cli, start_server
from tests.sdk.conftest import QUICK
from tests.sdk.proxy import FaultProxy, answer

pytestmark = pytest.mark.e2e
N = "/api/v1/notifications"


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _titles(server_url: str, key: str, user: str) -> list[str]:
    r = httpx.get(
        f"{server_url}{N}",
        params={"user_id": user},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    r.raise_for_status()
    return [n["title"] for n in r.json()["items"]]


def test_a_send_whose_server_dies_before_answering_is_created_once(tmp_path: Path) -> None:
    """The server commits the send and is SIGKILLed before its answer leaves; the client
    retries (same key) until a restarted server on the same database answers: the
    replay of what committed, so one notification."""
    env = clarion_env(tmp_path)
    first = start_server(tmp_path, env)
    killed = threading.Event()

    def kill() -> None:
        os.kill(first.proc.pid, signal.SIGKILL)
        killed.set()

    proxy = FaultProxy(_port(first.url), cut_after_forward=kill)
    result: dict[str, object] = {}
    patient = RetryPolicy(max_retries=60, base_delay=0.2, max_delay=1.0)

    def send() -> None:
        with Client(proxy.url, first.key, retry=patient) as clarion:
            try:
                result["sent"] = clarion.notifications.send(
                    user_id="kim", type="order", title="Order shipped"
                )
            except Exception as exc:  # reported below
                result["error"] = exc

    sender = threading.Thread(target=send)
    second: Server | None = None
    try:
        sender.start()
        assert killed.wait(60), "the send never reached the server"
        first.proc.wait(10)
        second = start_server(tmp_path, env, key=first.key)
        proxy.upstream_port = _port(second.url)
        sender.join(120)
        assert "error" not in result, result.get("error")
        sent = result["sent"]
        assert _titles(second.url, first.key, "kim") == ["Order shipped"]
        keys = {s.headers.get("idempotency-key") for s in proxy.seen}
        assert len(keys) == 1 and None not in keys, "one key for every try"
        assert len(proxy.seen) >= 2
        assert b"idempotent-replayed: true" in proxy.seen[-1].answered.lower()
        assert sent.ids == [1]  # type: ignore[attr-defined]
    finally:
        proxy.close()
        first.stop()
        if second is not None:
            second.stop()


def test_503_with_retry_after_is_waited_out(server: Server) -> None:
    proxy = FaultProxy(_port(server.url))
    proxy.canned.append(answer(503, "storage_unavailable", retry_after="1"))
    try:
        with Client(proxy.url, server.key, retry=QUICK) as clarion:
            began = time.monotonic()
            sent = clarion.notifications.send(user_id="lee", type="t", title="after a 503")
            took = time.monotonic() - began
        assert 1.0 <= took < 5 * 1.0 + 5, took
        assert len(sent.ids) == 1
        assert _titles(server.url, server.key, "lee") == ["after a 503"]
        assert proxy.seen[0].headers["idempotency-key"] == proxy.seen[1].headers["idempotency-key"]
    finally:
        proxy.close()


def test_retry_after_is_capped(server: Server) -> None:
    proxy = FaultProxy(_port(server.url))
    proxy.canned.append(answer(429, "rate_limited", retry_after="3600"))
    capped = RetryPolicy(max_retries=2, base_delay=0.05, max_delay=0.2, max_retry_after=0.3)
    try:
        with Client(proxy.url, server.key, retry=capped) as clarion:
            began = time.monotonic()
            clarion.system.status()
            assert time.monotonic() - began < 0.3 * 5 + 2
    finally:
        proxy.close()


def test_errors_after_the_last_retry_are_raised_typed(server: Server) -> None:
    proxy = FaultProxy(_port(server.url))
    proxy.canned += [answer(503, "dependency_unavailable", retry_after="0")] * 3
    proxy.canned += [answer(409, "idempotency_in_progress", retry_after="0")] * 3
    two = RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.02)
    try:
        with Client(proxy.url, server.key, retry=two) as clarion:
            with pytest.raises(ServiceUnavailableError) as unavailable:
                clarion.system.status()
            assert unavailable.value.code == "dependency_unavailable"
            assert unavailable.value.status == 503
            with pytest.raises(IdempotencyInProgressError):
                clarion.notifications.send(user_id="lee", type="t", title="never")
        assert len(proxy.seen) == 6  # each tried three times
    finally:
        proxy.close()


def test_refusals_that_retrying_cannot_change_are_not_retried(server: Server) -> None:
    proxy = FaultProxy(_port(server.url))
    try:
        with Client(proxy.url, server.key, retry=QUICK) as clarion:
            bodies = {"en": {"in_app.title": "Hi"}}
            clarion.templates.create("greeting", bodies)
            with pytest.raises(ConflictError) as conflict:
                clarion.templates.create("greeting", bodies)
            assert conflict.value.code == "conflict"
            with pytest.raises(ValidationError) as invalid:
                clarion.notifications.send(user_id="lee", type="bad type!", title="x")
            assert invalid.value.code == "validation_failed"
            assert invalid.value.details and invalid.value.request_id
        assert [s.method for s in proxy.seen] == ["POST", "POST", "POST"]
    finally:
        proxy.close()


def test_429_from_the_keys_rate_limit_is_waited_out(server: Server) -> None:
    """A key limited to 2 requests a second sends 5 notifications: the client waits each
    429's Retry-After and every send gets through, once."""
    key = run_cli(
        server.env,
        "api-key",
        "create",
        "--name",
        "slow",
        "--scope",
        "send",
        "--rate-limit",
        "2/second",
        cwd=server.log.parent,
    ).strip()
    statuses: list[int] = []
    hooks = {"response": [lambda r: statuses.append(r.status_code)]}
    with (
        httpx.Client(event_hooks=hooks) as http,
        Client(
            server.url, key, http_client=http, retry=RetryPolicy(max_retries=10, base_delay=0.1)
        ) as clarion,
    ):
        for i in range(5):
            clarion.notifications.send(user_id="rate", type="t", title=f"n{i}")
    assert 429 in statuses
    assert statuses.count(202) == 5
    assert sorted(_titles(server.url, server.key, "rate")) == [f"n{i}" for i in range(5)]


def test_no_server_is_a_connection_error_after_the_retries() -> None:
    from tests.e2e.conftest import free_port

    tries = RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.02)
    with (
        Client(f"http://127.0.0.1:{free_port()}", "clk_x", retry=tries) as clarion,
        pytest.raises(APIConnectionError),
    ):
        clarion.system.status()
