"""Every client method against a real server, each answered 2xx and read into its model:
the coverage test proves a method exists per operation, this one that each works (the
path, the body, the answer's model). The requests are recorded and matched to the app's
operations, so a method that calls the wrong route fails here."""

from __future__ import annotations

import asyncio
import base64
import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from clarion.services.unsubscribe import UnsubscribeSigner
from clarion_client import AsyncClient, Client, models
from tests.e2e.conftest import Server, clarion_env, start_server
from tests.sdk.conftest import QUICK
from tests.sdk.test_coverage import _app_operations

pytestmark = pytest.mark.e2e
SECRET = "sdk-tour-secret-" + "s" * 40
PUSH = {
    "endpoint": "https://93.184.215.14/push/tour",
    "keys": {
        "p256dh": base64.urlsafe_b64encode(b"\x04" + b"p" * 64).decode().rstrip("="),
        "auth": base64.urlsafe_b64encode(b"a" * 16).decode().rstrip("="),
    },
}


@pytest.fixture(scope="module")
def tour_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir: Path = tmp_path_factory.mktemp("tour")
    env = clarion_env(workdir, CLARION_SECRET_KEY=SECRET, CLARION_EMBEDDED_WORKER="false")
    started = start_server(workdir, env)
    try:
        yield started
    finally:
        started.stop()


def _matcher() -> list[tuple[str, re.Pattern[str], tuple[str, str]]]:
    out = []
    for method, path in _app_operations():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"
        out.append((method, re.compile(pattern), (method, path)))
    # The most specific template first (``/scheduled`` before ``/{notification_id}``).
    out.sort(key=lambda m: (m[2][1].count("{"), -len(m[2][1])))
    return out


def test_every_method_works(tour_server: Server) -> None:
    server = tour_server
    called: set[tuple[str, str]] = set()
    matchers = _matcher()

    def record(response: httpx.Response) -> None:
        assert response.status_code < 400, (response.request.url, response.status_code)
        path = response.request.url.path
        for method, pattern, op in matchers:
            if method == response.request.method and pattern.match(path):
                called.add(op)
                return
        raise AssertionError(f"no operation for {response.request.method} {path}")

    with (
        httpx.Client(event_hooks={"response": [record]}) as http,
        Client(server.url, server.key, http_client=http, retry=QUICK) as c,
    ):
        tour(c, server)
        asyncio.run(async_tour(server))
    called.add(("WS", "/api/v1/ws"))  # async_tour's live stream, which is not httpx
    called.update(ASYNC_CALLED)
    assert sorted(_app_operations() - called) == []


ASYNC_CALLED: set[tuple[str, str]] = set()


async def async_tour(server: Server) -> None:
    async with AsyncClient(server.url, server.key, retry=QUICK) as c:
        sent = await c.notifications.send(user_id="tour-live", type="t", title="live")
        token = (await c.users.create_token("tour-live")).token
        async with c.live(token, cursor=0) as stream:
            async for event in stream:
                if event.type == "notification.created":
                    assert event.id == sent.ids[0]
                    break
        counters = c.analytics.live(seconds=1)
        got = [x async for x in counters]
        assert all(isinstance(x, models.LiveCounters) for x in got)
        ASYNC_CALLED.add(("GET", "/api/v1/notifications/analytics/live"))


def tour(c: Client, server: Server) -> None:
    n = c.notifications
    sent = n.send(
        user_id="tour",
        type="follow",
        title="Hi",
        channels=["in_app", "webhook"],
        actions=[{"id": "open", "label": "Open", "url": "https://example.com/x"}],
    )
    [nid] = sent.ids
    assert n.get(nid).title == "Hi"
    assert [x.id for x in n.list(user_id="tour")] == [nid]
    assert n.unread_count("tour").unread == 1
    assert n.mark_seen(nid).seen_at
    assert n.mark_read(nid).status == "read"
    assert n.mark_unread(nid).status == "unread"
    assert n.archive(nid).archived_at
    assert n.unarchive(nid).archived_at is None
    assert n.click_action(nid, "open").status == "read"
    assert n.read_all(user_id="tour").unread == 0
    [delivery] = n.deliveries(nid).deliveries
    with sqlite3.connect(server.log.parent / "clarion.db", timeout=30) as db:
        db.execute("UPDATE deliveries SET status = 'dead' WHERE id = ?", (delivery.id,))
    assert n.retry_delivery(delivery.id).status == "pending"
    assert c.analytics.convert_notification(nid, name="signup").attributed
    assert c.analytics.convert_user("tour", name="purchase", value=9.5).user_id == "tour"
    token = c.users.create_token("tour").token
    frames = c.with_token(token).notifications.stream(cursor=0)
    first = next(iter(frames))
    frames.close()  # type: ignore[attr-defined]
    assert first.type == "notification.created"
    n.delete(nid)

    when = datetime.now(UTC) + timedelta(days=2)
    later = n.send(
        user_id="tour", type="t", title="Later", scheduled_for=when, cancellation_key="tour-key"
    )
    [send_id] = later.scheduled or []
    assert c.scheduled.get(send_id).title == "Later"
    assert c.scheduled.reschedule(send_id, when + timedelta(hours=1)).status == "scheduled"
    assert [s.id for s in c.scheduled.list(user_id="tour")] == [send_id]
    c.scheduled.cancel(send_id)
    n.send(user_id="tour", type="t", title="L2", scheduled_for=when, cancellation_key="k2")
    assert c.scheduled.cancel_by_key("k2").cancelled == 1

    c.batching_rules.put("tour.like", strategy="count", count=5)
    assert [
        r.type
        for r in c.batching_rules.replace_all(
            [
                {"type": "tour.like", "strategy": "count", "count": 5},
                {"type": "tour.follow", "strategy": "window", "window_seconds": 60},
            ]
        )
    ] == ["tour.follow", "tour.like"]
    assert {r.type for r in c.batching_rules.list()} == {"tour.follow", "tour.like"}
    b1 = n.send(user_id="tour", type="tour.like", title="like").batched or []
    assert c.batches.get(b1[0]).items[0].title == "like"
    assert [b.id for b in c.batches.list(user_id="tour")] == b1
    assert c.batches.flush(b1[0]).notification_id
    b2 = n.send(user_id="tour", type="tour.like", title="like 2").batched or []
    c.batches.drop(b2[0])
    c.batching_rules.delete("tour.follow")

    assert c.preferences.put("tour", channels={"email": False}).channels == {"email": False}
    assert c.preferences.get("tour").channels == {"email": False}
    assert c.users.put("tour", name="Tour", email="tour@example.com").name == "Tour"
    assert c.users.get("tour").email == "tour@example.com"
    sub = c.users.add_push_subscription("tour", PUSH)
    assert [s.id for s in c.users.push_subscriptions("tour")] == [sub.id]
    c.users.delete_push_subscription("tour", sub.id)

    link = UnsubscribeSigner(SECRET).sign("tour", "follow", "email")
    assert "<html" in c.unsubscribe.page(link).lower()
    assert c.unsubscribe.confirm(link)

    bodies = {"en": {"in_app.title": "Hi {{ data.name }}"}}
    assert c.templates.create("tour-tpl", bodies).version == 1
    assert c.templates.replace("tour-tpl", bodies, description="d").version == 2
    assert c.templates.get("tour-tpl").description == "d"
    assert [t.key for t in c.templates.list()] == ["tour-tpl"]
    assert c.templates.preview("tour-tpl", data={"name": "Ana"}).parts["in_app.title"] == "Hi Ana"
    c.templates.delete("tour-tpl")

    hook = c.webhooks.create("https://93.184.215.14/tour", types=["follow"])
    assert hook.secret.startswith("whsec_")
    assert c.webhooks.get(hook.id).url == hook.url
    assert hook.id in [w.id for w in c.webhooks.list()]
    c.webhooks.delete(hook.id)

    x = c.experiments
    exp = x.create(
        "tour", [{"key": "a", "weight": 50}, {"key": "b", "weight": 50}], target_type="tour.exp"
    )
    assert x.update(exp.id, name="tour 2").name == "tour 2"
    assert x.start(exp.id).status == "running"
    assert x.pause(exp.id).status == "paused"
    assert x.get(exp.id).status == "paused"
    assert [e.id for e in x.list()] == [exp.id]
    assert x.results(exp.id).arms
    assert x.promote(exp.id, "b").winner == "b"
    exp2 = x.create(
        "tour b", [{"key": "a", "weight": 50}, {"key": "b", "weight": 50}], target_type="tour.exp2"
    )
    x.start(exp2.id)
    assert x.stop(exp2.id).status == "stopped"
    x.delete(exp2.id)

    a = c.analytics
    assert a.dashboard(start=datetime.now(UTC) - timedelta(hours=1)).model_extra
    assert a.user_metrics("tour").model_extra
    assert 0 <= a.health_score(window="1h").score <= 100
    assert a.trends("accepted", interval="hour").model_extra
    events = a.events()
    assert isinstance(events, list) and events and "type" in events[0]
    assert isinstance(a.events(format="csv"), str)
    assert c.system.status().status in ("ok", "degraded")

    assert c.users.export("tour")["user_id"] == "tour"
    c.users.erase("tour")
