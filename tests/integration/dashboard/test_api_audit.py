"""Admin operations through the API land in the audit log with before and after; sends,
reads and refused requests do not."""

from __future__ import annotations

import httpx

from clarion.services.container import Services

from .test_editing import TEMPLATE


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
    assert row["before"]["email"] == "ana@example.com"
