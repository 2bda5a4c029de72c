"""The analytics endpoints in process on both databases: figures after sends, reads,
clicks, conversions and an opt-out; the export in both formats; bad input is a 422 that
changes nothing; conversions are idempotent and credited within the window."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from clarion.services.container import Services

N = "/api/v1/notifications"
A = f"{N}/analytics"
ACTIONS = [{"id": "open", "label": "Open", "action": "open"}]


async def _send(authed: httpx.AsyncClient, user: str, type_: str = "order", **extra: Any) -> int:
    body = {"user_id": user, "type": type_, "title": "T", "actions": ACTIONS, **extra}
    r = await authed.post(N, json=body)
    assert r.status_code == 202, r.text
    nid: int = r.json()["ids"][0]
    return nid


async def _story(authed: httpx.AsyncClient, services: Services) -> list[int]:
    ids = [await _send(authed, "ana") for _ in range(3)] + [await _send(authed, "bo", "promo")]
    assert (await authed.post(f"{N}/{ids[0]}/seen")).status_code == 200
    assert (await authed.post(f"{N}/{ids[0]}/read")).status_code == 200
    assert (await authed.post(f"{N}/{ids[1]}/actions/open")).status_code == 200  # read too
    r = await authed.post(f"{N}/{ids[1]}/conversions", json={"name": "purchase", "value": 20})
    assert r.status_code == 201, r.text
    assert r.json()["attributed"] is True and r.json()["notification_id"] == ids[1]
    again = await authed.post(f"{N}/{ids[1]}/conversions", json={"name": "purchase", "value": 99})
    assert again.status_code == 200 and again.json()["value"] == 20  # once per name
    await services.rollups.catch_up()
    return ids


async def test_dashboard_counts_what_happened(
    authed: httpx.AsyncClient, services: Services
) -> None:
    await _story(authed, services)
    r = await authed.get(f"{A}/dashboard")
    assert r.status_code == 200, r.text
    d = r.json()
    t = d["totals"]
    assert (t["accepted"], t["in_inbox"], t["delivered"]) == (4, 4, 4)
    assert (t["seen"], t["read"], t["clicked"], t["converted"]) == (1, 2, 1, 1)
    assert t["conversion_value"] == 20
    assert [s["count"] for s in d["funnel"]] == [4, 4, 1, 2, 1, 1]
    assert d["rates"]["read_rate"] == 0.5 and d["rates"]["click_through_rate"] == 0.25
    assert d["by_type"]["order"]["accepted"] == 3 and d["by_type"]["promo"]["accepted"] == 1
    assert d["by_type"]["order"]["read"] == 2
    assert d["by_channel"]["in_app"]["delivered"] == 4
    assert d["latency_ms"]["read"]["in_app"]["count"] == 2
    assert 0 <= d["health"]["score"] <= 100
    assert d["outbox"]["pending"] == 0 and d["dependencies"]["database"] == "ok"


async def test_user_metrics_and_engagement(authed: httpx.AsyncClient, services: Services) -> None:
    await _story(authed, services)
    ana = (await authed.get(f"{A}/metrics/ana")).json()
    assert ana["received"] == 3 and ana["totals"]["read"] == 2 and ana["totals"]["clicked"] == 1
    assert ana["rates"]["read_rate"] == round(2 / 3, 6)
    assert ana["median_time_to_read_ms"] is not None and ana["last_active_at"] is not None
    assert ana["engagement_score"] > 0
    bo = (await authed.get(f"{A}/metrics/bo")).json()
    assert bo["received"] == 1 and bo["totals"]["read"] == 0
    assert bo["engagement_score"] < ana["engagement_score"]
    nobody = (await authed.get(f"{A}/metrics/nobody")).json()
    assert nobody["received"] == 0 and nobody["engagement_score"] == 0


async def test_trends_put_the_previous_period_beside(
    authed: httpx.AsyncClient, services: Services
) -> None:
    await _story(authed, services)
    r = await authed.get(f"{A}/trends", params={"metric": "accepted", "interval": "hour"})
    assert r.status_code == 200, r.text
    points = r.json()["points"]
    assert len(points) == 25 and sum(p["value"] or 0 for p in points) == 4
    assert all(p["previous"] is None for p in points)
    typed = await authed.get(f"{A}/trends", params={"metric": "read", "type": "promo"})
    assert sum(p["value"] or 0 for p in typed.json()["points"]) == 0
    rate = await authed.get(f"{A}/trends", params={"metric": "read_rate", "interval": "day"})
    assert [p["value"] for p in rate.json()["points"] if p["value"] is not None] == [0.5]


async def test_export_streams_raw_events(authed: httpx.AsyncClient, services: Services) -> None:
    ids = await _story(authed, services)
    r = await authed.get(f"{A}/events", params={"event": "accepted"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    rows = [orjson.loads(line) for line in r.content.splitlines()]
    assert sorted(e["notification_id"] for e in rows) == sorted(ids)
    assert {e["ntype"] for e in rows} == {"order", "promo"} and "txid" not in rows[0]
    c = await authed.get(f"{A}/events", params={"format": "csv", "user_id": "bo"})
    table = list(csv.DictReader(io.StringIO(c.text)))
    assert [row["type"] for row in table] == ["accepted"] and table[0]["user_id"] == "bo"


async def test_health_score_has_every_component(authed: httpx.AsyncClient) -> None:
    r = await authed.get(f"{A}/health-score")
    assert r.status_code == 200, r.text
    h = r.json()
    names = {c["name"] for c in h["components"]}
    assert {"delivery_success", "backlog_age", "degraded_dependencies"} <= names
    assert sum(c["weight"] for c in h["components"]) == 100
    assert [w["window"] for w in h["windows"]] == ["1h", "24h", "7d"]
    one = (await authed.get(f"{A}/health-score", params={"window": "24h"})).json()
    assert [w["window"] for w in one["windows"]] == ["24h"]


async def test_the_score_is_computed_at_most_once_a_second(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Callers at once share one computation, and within FRESH_FOR get it again; after
    that, a new one (computed_at says when)."""
    first = await asyncio.gather(*[services.health.score() for _ in range(5)])
    assert len({id(r) for r in first}) == 1
    assert (await services.health.score())["computed_at"] == first[0]["computed_at"]
    monkeypatch.setattr(services.health.recent, "fresh_for", 0.0)
    # Up to STALE_FOR old, it is answered while the next is computed in the background.
    assert (await services.health.score())["computed_at"] == first[0]["computed_at"]
    await services.health.close()  # the background computation is over
    renewed = await services.health.score()
    assert renewed["computed_at"] > first[0]["computed_at"]
    # Older than STALE_FOR, a caller waits for a new one.
    monkeypatch.setattr(services.health.recent, "stale_for", 0.0)
    later = await services.health.score()
    assert later["computed_at"] > renewed["computed_at"]


async def test_the_dashboard_shows_the_outbox_as_of_at_most_seconds_ago(
    authed: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The outbox, connections and dependencies do not depend on the range: the dashboard
    shows them as computed at most ``fresh_for`` ago (answering one up to ``stale_for``
    old while the next is computed); older than that, it reads them afresh."""
    from clarion.services.status import RECENT_FRESH_FOR, RECENT_STALE_FOR

    assert (services.recent_status.fresh_for, services.recent_status.stale_for) == (
        RECENT_FRESH_FOR,
        RECENT_STALE_FOR,
    )
    monkeypatch.setattr(services.recent_status, "fresh_for", 60.0)
    monkeypatch.setattr(services.recent_status, "stale_for", 60.0)
    assert (await authed.get(f"{A}/dashboard")).json()["outbox"]["pending"] == 0
    await authed.put("/api/v1/users/ana", json={"email": "ana@example.com"})
    body = {"user_id": "ana", "type": "t", "title": "x", "channels": ["email"]}
    assert (await authed.post(N, json=body)).status_code == 202
    # Within fresh_for: the status computed before the send.
    assert (await authed.get(f"{A}/dashboard")).json()["outbox"]["pending"] == 0
    assert (await authed.get(f"{N}/system/status")).json()["outbox"]["pending"] == 1
    # Older than stale_for: read afresh before answering.
    monkeypatch.setattr(services.recent_status, "fresh_for", 0.0)
    monkeypatch.setattr(services.recent_status, "stale_for", 0.0)
    d = (await authed.get(f"{A}/dashboard")).json()
    assert d["outbox"]["pending"] == 1 and d["dependencies"]["database"] == "ok"


async def test_user_conversion_is_credited_within_the_window_else_kept_uncredited(
    authed: httpx.AsyncClient, services: Services
) -> None:
    nid = await _send(authed, "cy")
    r = await authed.post("/api/v1/users/cy/conversions", json={"name": "signup"})
    assert r.status_code == 201 and r.json()["notification_id"] == nid
    holdout = await authed.post("/api/v1/users/dee/conversions", json={"value": 5})
    assert holdout.status_code == 201
    assert holdout.json()["attributed"] is False and holdout.json()["name"] == "conversion"
    await services.rollups.catch_up()
    d = (await authed.get(f"{A}/dashboard")).json()
    assert d["totals"]["converted"] == 2 and d["totals"]["conversion_value"] == 5


@pytest.mark.parametrize(
    ("path", "params"),
    [
        (f"{A}/dashboard", {"from": "2026-12-02T00:00:00Z", "to": "2026-12-01T00:00:00Z"}),
        (f"{A}/dashboard", {"from": "yesterday"}),
        (f"{A}/trends", {"metric": "nope"}),
        (f"{A}/trends", {"metric": "read", "interval": "minute"}),
        (f"{A}/events", {"from": "2000-01-01T00:00:00Z"}),
        (f"{A}/metrics/ana", {"from": "2000-01-01T00:00:00Z"}),
        (f"{A}/dashboard", {"from": "2020-01-01T00:00:00Z"}),
        (f"{A}/health-score", {"window": "2h"}),
    ],
)
async def test_bad_input_is_a_422(
    authed: httpx.AsyncClient, path: str, params: dict[str, str]
) -> None:
    r = await authed.get(path, params=params)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"]["code"] in {"validation_failed", "invalid_parameter"}, body


async def test_conversion_bad_input_changes_nothing(
    authed: httpx.AsyncClient, services: Services
) -> None:
    nid = await _send(authed, "eve")
    for body in ({"value": "lots"}, {"name": ""}, {"name": "x" * 101}, {"extra": 1}):
        r = await authed.post(f"{N}/{nid}/conversions", json=body)
        assert r.status_code == 422, (body, r.text)
    assert (await authed.post(f"{N}/999999/conversions", json={})).status_code == 404
    await services.rollups.catch_up()
    d = (await authed.get(f"{A}/dashboard")).json()
    assert d["totals"]["converted"] == 0


async def test_a_user_token_is_refused(authed: httpx.AsyncClient) -> None:
    token = (await authed.post("/api/v1/users/ana/token")).json()["token"]
    r = await authed.get(f"{A}/metrics/ana", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403


def test_time_ranges_are_whole_hours() -> None:
    from clarion.services.analytics import resolve_range

    now = datetime(2026, 12, 7, 15, 20, tzinfo=UTC)
    lo, hi = resolve_range(None, None, now, default=timedelta(hours=24))
    assert (lo, hi) == (
        datetime(2026, 12, 6, 15, tzinfo=UTC),
        datetime(2026, 12, 7, 16, tzinfo=UTC),
    )
