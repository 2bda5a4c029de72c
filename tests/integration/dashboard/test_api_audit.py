"""Admin operations through the API land in the audit log with before and after; sends,
reads and refused requests do not."""

from __future__ import annotations

import httpx

from clarion.api.audit import AUDITED, BEFORE
from clarion.services.container import Services

from .test_editing import TEMPLATE
from .test_pages import _dead_delivery


async def test_admin_api_changes_are_audited(authed: httpx.AsyncClient, services: Services) -> None:
    assert (await authed.post("/api/v1/templates", json=TEMPLATE)).status_code == 201
    body = {k: v for k, v in TEMPLATE.items() if k != "key"}
    body["description"] = "second"
    assert (await authed.put("/api/v1/templates/welcome", json=body)).status_code == 200
    assert (await authed.put("/api/v1/templates/nope", json=body)).status_code == 404
    assert (await authed.delete("/api/v1/templates/welcome")).status_code == 204
    r = await authed.post(
        "/api/v1/notifications", json={"user_id": "ana", "type": "t", "title": "hi"}
    )
    assert r.status_code == 202
    assert (await authed.get("/api/v1/templates")).status_code == 200

    rows = await services.dashboard.audit_page()
    assert [r["action"] for r in rows] == [
        "DELETE /api/v1/templates/{key}",
        "PUT /api/v1/templates/{key}",
        "POST /api/v1/templates",
    ]
    deleted, replaced, created = rows
    assert created["before"] is None and created["after"]["version"] == 1
    assert replaced["before"]["description"] is None
    assert replaced["after"]["description"] == "second" and replaced["after"]["version"] == 2
    assert deleted["before"]["version"] == 2 and deleted["after"] is None
    assert all(r["via"] == "api" and r["actor"].startswith("api_key:") for r in rows)
    assert deleted["target"] == "/api/v1/templates/welcome"


async def test_user_erasure_is_audited(authed: httpx.AsyncClient, services: Services) -> None:
    r = await authed.put("/api/v1/users/ana", json={"email": "ana@example.com"})
    assert r.status_code in (200, 201), r.text
    r = await authed.delete("/api/v1/users/ana")
    assert r.status_code < 300, r.text
    [row] = await services.dashboard.audit_page()
    assert row["action"] == "DELETE /api/v1/users/{user_id}"
    assert row["before"]["fields_set"] == ["email"]
    assert "ana@example.com" not in str(row)  # the log keeps no erased contact detail


async def test_batching_rule_changes_record_before_and_after(
    authed: httpx.AsyncClient, services: Services
) -> None:
    rules = "/api/v1/notifications/batching/rules"
    first = {"strategy": "window", "window_seconds": 600}
    assert (await authed.put(f"{rules}/follow", json=first)).status_code in (200, 201)
    second = {"strategy": "count", "count": 5}
    assert (await authed.put(f"{rules}/follow", json=second)).status_code == 200
    whole = [{"type": "like", "strategy": "window", "window_seconds": 60}]
    assert (await authed.put(rules, json=whole)).status_code == 200
    assert (await authed.delete(f"{rules}/like")).status_code == 204

    deleted, replaced_all, changed, created = await services.dashboard.audit_page()
    assert created["action"] == "PUT /api/v1/notifications/batching/rules/{type}"
    assert created["before"] is None and created["after"]["window_seconds"] == 600
    assert changed["before"]["strategy"] == "window" and changed["before"]["window_seconds"] == 600
    assert changed["after"]["strategy"] == "count" and changed["after"]["count"] == 5
    assert replaced_all["action"] == "PUT /api/v1/notifications/batching/rules"
    assert [r["type"] for r in replaced_all["before"]] == ["follow"]
    assert replaced_all["before"][0]["count"] == 5
    assert [r["type"] for r in replaced_all["after"]] == ["like"]
    assert deleted["action"] == "DELETE /api/v1/notifications/batching/rules/{type}"
    assert deleted["before"]["type"] == "like" and deleted["before"]["window_seconds"] == 60
    assert deleted["after"] is None


async def test_api_retry_records_the_dead_delivery_before(
    authed: httpx.AsyncClient, services: Services
) -> None:
    await _dead_delivery(authed, services, "ana")
    [dead] = await services.dashboard_reads.dead_letters({}, 10)
    r = await authed.post(f"/api/v1/notifications/deliveries/{dead['id']}/retry")
    assert r.status_code == 200, r.text
    row = next(x for x in await services.dashboard.audit_page() if "retry" in x["action"])
    assert row["action"] == "POST /api/v1/notifications/deliveries/{delivery_id}/retry"
    assert row["before"]["status"] == "dead" and row["before"]["last_error"] == "HTTP 400"
    assert row["after"]["status"] == "pending" and row["after"]["id"] == dead["id"]


def test_every_audited_change_of_an_existing_object_reads_its_before() -> None:
    """Only a create (POST to a collection) has nothing before it."""
    creates = {(m, t) for m, _, t in AUDITED if m == "POST" and "{" not in t}
    missing = [(m, t) for m, _, t in AUDITED if (m, t) not in creates and t not in BEFORE]
    assert missing == []
    assert ("POST", "/api/v1/templates") in creates
