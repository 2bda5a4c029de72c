"""Analytics through a real ``clarion serve`` on both databases: notifications sent,
delivered to a real SMTP server and a real webhook receiver (one email refused for good),
read, clicked and converted through the API; the dashboard, a user's metrics and the
trends then show exactly those numbers, folded by the server's own background loop."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import PG_ADMIN_URL, _pg_admin, service_missing
from tests.e2e.conftest import clarion_env, start_server
from tests.integration.channels.conftest import (  # noqa: F401
    Receiver,
    SmtpServer,
    receiver,
    smtp_server,
)

N = "/api/v1/notifications"
A = f"{N}/analytics"
pytestmark = pytest.mark.e2e


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    if request.param == "sqlite":
        yield {}
        return
    name = f"clarion_analytics_{uuid.uuid4().hex[:8]}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        service_missing("PostgreSQL at 127.0.0.1:5432", exc)
    try:
        yield {"CLARION_DATABASE_URL": f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"}
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _until(check: Any, seconds: float = 20.0) -> Any:
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"not reached in {seconds}s: {last!r}")


async def test_the_dashboard_counts_exactly_what_happened(
    tmp_path: Path,
    database: dict[str, str],
    smtp_server: SmtpServer,  # noqa: F811
    receiver: Receiver,  # noqa: F811
) -> None:
    smtp_server.sink.rcpt_replies["bo@example.com"] = "550 no such user"
    env = clarion_env(
        tmp_path,
        CLARION_SMTP_HOST="127.0.0.1",
        CLARION_SMTP_PORT=str(smtp_server.port),
        CLARION_WEBHOOK_ALLOW_PRIVATE="true",
        CLARION_WORKER_POLL_SECONDS="0.2",
        CLARION_PIPELINE_POLL_SECONDS="0.2",
        **database,
    )
    server = await asyncio.to_thread(start_server, tmp_path, env)
    h = {"Authorization": f"Bearer {server.key}"}
    try:
        async with httpx.AsyncClient(base_url=server.url, headers=h, timeout=10) as c:
            await c.put("/api/v1/users/ana", json={"email": "ana@example.com"})
            await c.put("/api/v1/users/bo", json={"email": "bo@example.com"})
            hook = await c.post(
                "/api/v1/webhooks", json={"url": receiver.url("/hook"), "user_id": "ana"}
            )
            assert hook.status_code == 201, hook.text
            actions = [{"id": "open", "label": "Open", "action": "open"}]
            ids = []
            for i in range(3):
                r = await c.post(
                    N,
                    json={
                        "user_id": "ana",
                        "type": "order",
                        "title": f"Order {i}",
                        "actions": actions,
                        "channels": ["in_app", "email", "webhook"],
                    },
                )
                assert r.status_code == 202, r.text
                ids += r.json()["ids"]
            r = await c.post(
                N, json={"user_id": "bo", "type": "promo", "title": "Sale", "channels": ["email"]}
            )
            bo_id = r.json()["ids"][0]

            async def final() -> bool:
                done = 0
                for nid in [*ids, bo_id]:
                    ds = (await c.get(f"{N}/{nid}/deliveries")).json()["deliveries"]
                    done += sum(d["status"] in ("delivered", "dead") for d in ds)
                return done == 7

            await _until(final)
            assert len(smtp_server.sink.messages) == 3 and len(receiver.at("/hook")) == 3

            assert (await c.post(f"{N}/{ids[0]}/read")).status_code == 200
            assert (await c.post(f"{N}/{ids[1]}/actions/open")).status_code == 200
            bought = await c.post(f"{N}/{ids[1]}/conversions", json={"name": "buy", "value": 20})
            assert bought.status_code == 201, bought.text
            holdout = await c.post("/api/v1/users/cy/conversions", json={"name": "buy"})
            assert holdout.json()["attributed"] is False

            async def folded() -> dict[str, Any] | None:
                d: dict[str, Any] = (await c.get(f"{A}/dashboard")).json()
                return d if d["totals"]["converted"] == 2 and d["totals"]["read"] == 2 else None

            d = await _until(folded)
            t = d["totals"]
            assert (t["accepted"], t["in_inbox"], t["delivered"]) == (4, 3, 3)
            assert (t["reached_other_channels"], t["dead"]) == (6, 1)
            assert (t["read"], t["clicked"], t["converted"], t["conversion_value"]) == (2, 1, 2, 20)
            assert [s["count"] for s in d["funnel"]] == [4, 3, 0, 2, 1, 2]
            assert d["rates"]["provider_success_rate"] == round(6 / 7, 6)
            email, webhook = d["by_channel"]["email"], d["by_channel"]["webhook"]
            assert (email["reached_other_channels"], email["dead"]) == (3, 1)
            assert webhook["reached_other_channels"] == 3
            assert email["latency_ms"]["count"] == 3 and webhook["latency_ms"]["count"] == 3
            assert d["by_type"]["promo"]["dead"] == 1 and d["by_type"]["order"]["read"] == 2
            [reason] = d["top_failure_reasons"]
            assert (reason["event"], reason["channel"], reason["count"]) == ("dead", "email", 1)

            ana = (await c.get(f"{A}/metrics/ana")).json()
            assert ana["received"] == 3 and ana["totals"]["read"] == 2
            assert ana["channels"]["email"]["sent"] == 3
            assert ana["channels"]["webhook"]["delivered"] == 3
            bo = (await c.get(f"{A}/metrics/bo")).json()
            assert bo["channels"]["email"]["dead"] == 1 and bo["engagement_score"] == 0

            trend = (await c.get(f"{A}/trends", params={"metric": "delivered"})).json()
            assert sum(p["value"] or 0 for p in trend["points"]) == 6
            reads = (await c.get(f"{A}/trends", params={"metric": "read", "type": "order"})).json()
            assert sum(p["value"] or 0 for p in reads["points"]) == 2

            health = (await c.get(f"{A}/health-score")).json()
            assert 0 <= health["score"] <= 100
            metrics = (await c.get("/metrics")).text
            assert "clarion_health_score " in metrics
            assert 'clarion_health_component_score{component="delivery_success"}' in metrics
    finally:
        await asyncio.to_thread(server.stop)
