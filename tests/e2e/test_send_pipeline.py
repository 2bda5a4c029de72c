"""The send pipeline through real ``clarion serve`` processes: batches folded by the
embedded worker's loop, scheduled sends on time (and across a restart), cancellation,
quiet hours against a real SMTP server (aiosmtpd), opted-out channels."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import Server, clarion_env, start_server
from tests.integration.channels.conftest import SmtpServer, smtp_server  # noqa: F401


def _client(server: Server) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.key}"}, timeout=10
    )


def _inbox(c: httpx.Client, user: str) -> list[dict[str, Any]]:
    r = c.get(f"/api/v1/notifications?user_id={user}&limit=100")
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def _wait_inbox(c: httpx.Client, user: str, n: int, seconds: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        items = _inbox(c, user)
        if len(items) >= n:
            return items
        time.sleep(0.1)
    raise AssertionError(f"{user} did not get {n} notifications in {seconds}s")


def _in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def test_window_batch_of_five_follows_becomes_one_notification(served: Server) -> None:
    with _client(served) as c:
        r = c.put(
            "/api/v1/notifications/batching/rules/follow",
            json={"strategy": "window", "window_seconds": 2},
        )
        assert r.status_code == 200, r.text
        batch_ids = set()
        for name in ["Bo", "Cy", "Di", "Ed", "Ana"]:
            r = c.post(
                "/api/v1/notifications",
                json={
                    "user_id": "zoe",
                    "type": "follow",
                    "title": "New follower",
                    "message": f"{name} started following you",
                    "data": {"actor": {"id": name.lower(), "name": name}},
                },
            )
            assert r.status_code == 202 and r.json()["ids"] == [], r.text
            batch_ids.update(r.json()["batched"])
        assert len(batch_ids) == 1 and _inbox(c, "zoe") == []
        [n] = _wait_inbox(c, "zoe", 1, 6)
        assert n["message"] == "Ana and 4 others started following you"
        assert len(n["data"]["actors"]) == 5 and n["data"]["count"] == 5
        time.sleep(1)
        assert len(_inbox(c, "zoe")) == 1  # once
        assert c.get("/api/v1/notifications/batches").json()["items"] == []


def test_schedule_arrives_after_its_time_and_cancelled_never(served: Server) -> None:
    with _client(served) as c:
        due = datetime.now(UTC) + timedelta(seconds=2)
        r = c.post(
            "/api/v1/notifications",
            json={
                "user_id": "sam",
                "type": "reminder",
                "title": "Now",
                "scheduled_for": due.isoformat(),
            },
        )
        assert r.status_code == 202 and len(r.json()["scheduled"]) == 1, r.text
        r = c.post(
            "/api/v1/notifications",
            json={
                "user_id": "sam",
                "type": "reminder",
                "title": "Never",
                "scheduled_for": _in(1.5),
                "cancellation_key": "order-1",
            },
        )
        assert c.delete("/api/v1/notifications/scheduled?cancellation_key=order-1").json() == {
            "cancelled": 1
        }
        while datetime.now(UTC) < due - timedelta(seconds=0.2):
            assert _inbox(c, "sam") == []  # not before its time
            time.sleep(0.1)
        [n] = _wait_inbox(c, "sam", 1, 3)
        arrived = datetime.now(UTC)
        assert n["title"] == "Now"
        assert datetime.fromisoformat(n["created_at"]) >= due
        assert arrived - due < timedelta(seconds=2.5)
        time.sleep(1)
        assert [i["title"] for i in _inbox(c, "sam")] == ["Now"]


def test_scheduled_send_survives_a_restart(tmp_path: Path) -> None:
    env = clarion_env(tmp_path)
    first = start_server(tmp_path, env)
    try:
        with _client(first) as c:
            r = c.post(
                "/api/v1/notifications",
                json={"user_id": "ray", "type": "t", "title": "Later", "scheduled_for": _in(3)},
            )
            assert r.status_code == 202, r.text
    finally:
        first.stop()  # SIGTERM to its PID
    assert first.proc.returncode is not None
    second = start_server(tmp_path, env, key=first.key)
    try:
        with _client(second) as c:
            [n] = _wait_inbox(c, "ray", 1, 10)
            assert n["title"] == "Later"
    finally:
        second.stop()


def _quiet_now() -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "quiet_hours": {
            "start": (now - timedelta(hours=1)).strftime("%H:%M"),
            "end": (now + timedelta(hours=1)).strftime("%H:%M"),
            "timezone": "UTC",
        }
    }


async def test_quiet_hours_defer_email_urgent_goes_through_opt_out_suppressed(
    tmp_path: Path,
    smtp_server: SmtpServer,  # noqa: F811
) -> None:
    env = clarion_env(
        tmp_path,
        CLARION_SMTP_HOST="127.0.0.1",
        CLARION_SMTP_PORT=str(smtp_server.port),
        CLARION_WORKER_POLL_SECONDS="0.2",
    )
    server = await asyncio.to_thread(start_server, tmp_path, env)
    h = {"Authorization": f"Bearer {server.key}"}
    try:
        async with httpx.AsyncClient(base_url=server.url, headers=h, timeout=10) as c:
            await c.put("/api/v1/users/quinn", json={"email": "quinn@example.com"})
            await c.put("/api/v1/notifications/preferences/quinn", json=_quiet_now())

            async def send(**extra: Any) -> int:
                body = {"user_id": "quinn", "type": "alert", "title": "Hi", "channels": ["email"]}
                r = await c.post("/api/v1/notifications", json={**body, **extra})
                assert r.status_code == 202, r.text
                nid: int = r.json()["ids"][0]
                return nid

            async def email_of(nid: int) -> dict[str, Any]:
                r = await c.get(f"/api/v1/notifications/{nid}/deliveries")
                [d] = r.json()["deliveries"]
                return dict(d)

            quiet = await send(title="Quiet")
            urgent = await send(title="Urgent", priority="urgent")
            for _ in range(100):
                if (await email_of(urgent))["status"] == "delivered":
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            assert [m["Subject"] for _, m in smtp_server.sink.messages] == ["Urgent"]
            deferred = await email_of(quiet)
            assert deferred["status"] == "scheduled" and deferred["reason"] == "quiet_hours"

            # An opted-out channel: suppressed with its reason, visible in deliveries.
            await c.put(
                "/api/v1/notifications/preferences/quinn",
                json={"types": {"alert": {"email": False}}},
            )
            opted = await send(title="Opted out")
            d = await email_of(opted)
            assert d["status"] == "suppressed" and d["reason"] == "preference"
    finally:
        await asyncio.to_thread(server.stop)


def test_python_usage_from_the_brief(served: Server) -> None:
    """docs/scheduling.md's example: a rich_media notification with actions to in_app and
    push at high priority, and a system alert scheduled an hour ahead."""
    import httpx as client_lib

    api = client_lib.Client(base_url=served.url, headers={"Authorization": f"Bearer {served.key}"})
    sent = api.post(
        "/api/v1/notifications",
        json={
            "user_id": "user-123",
            "type": "new_photo",
            "title": "Ana posted a photo",
            "message": "Tap to see it",
            "template": "rich_media",
            "media": {"image": "https://cdn.example.com/p/1.jpg"},
            "actions": [
                {"id": "like", "label": "Like", "action": "like"},
                {"id": "open", "label": "Open", "url": "https://example.com/p/1"},
            ],
            "channels": ["in_app", "push"],
            "priority": "high",
        },
    )
    assert sent.status_code == 202, sent.text
    alert = api.post(
        "/api/v1/notifications",
        json={
            "user_id": "user-123",
            "type": "system_alert",
            "title": "Maintenance tonight",
            "message": "We will be down for 10 minutes.",
            "priority": "urgent",
            "scheduled_for": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
            "cancellation_key": "maintenance-42",
        },
    )
    assert alert.status_code == 202, alert.text
    [nid] = sent.json()["ids"]
    n = api.get(f"/api/v1/notifications/{nid}").json()
    assert n["priority"] == "high" and len(n["actions"]) == 2 and n["media"]["image"]
    push = api.get(f"/api/v1/notifications/{nid}/deliveries").json()["deliveries"]
    assert [d["channel"] for d in push] == ["push"]
    [pending] = api.get("/api/v1/notifications/scheduled?user_id=user-123").json()["items"]
    assert pending["id"] == alert.json()["scheduled"][0] and pending["status"] == "scheduled"
    api.close()
