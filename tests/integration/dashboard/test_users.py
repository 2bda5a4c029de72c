"""The users page: the list by id prefix, paged by cursor; erasing a user behind a
confirmation with CSRF, audited, refused to a read-only session."""

from __future__ import annotations

import re

import httpx

from clarion.services.container import Services
from clarion.web.dashboard.users import PAGE

from .conftest import csrf_of, sign_in


def _listed(html: str) -> list[str]:
    return re.findall(r'<a href="/dashboard/users/[^"]+">([^<]+)</a></td><td>', html)


async def test_users_listed_by_prefix_and_paged(
    admin: httpx.AsyncClient, authed: httpx.AsyncClient
) -> None:
    ids = [f"team-{i:03d}" for i in range(PAGE + 5)] + ["other", "team_x", "teamz"]
    for user_id in ids:
        r = await authed.put(f"/api/v1/users/{user_id}", json={"name": user_id.upper()})
        assert r.status_code in (200, 201), r.text
    first = await admin.get("/dashboard/users", params={"prefix": "team-"})
    assert first.status_code == 200
    assert _listed(first.text) == [f"team-{i:03d}" for i in range(PAGE)]
    after = re.search(r'id="next-users" href="\?([^"]+)"', first.text)
    assert after, "no link to the next page"
    second = await admin.get("/dashboard/users?" + after.group(1).replace("&amp;", "&"))
    assert _listed(second.text) == [f"team-{i:03d}" for i in range(PAGE, PAGE + 5)]
    assert 'id="next-users"' not in second.text
    # "_" and "%" are plain characters in a prefix, not patterns
    underscore = await admin.get("/dashboard/users", params={"prefix": "team_"})
    assert _listed(underscore.text) == ["team_x"]
    none = await admin.get("/dashboard/users", params={"prefix": "nobody"})
    assert "No user matches." in none.text
    everyone = await admin.get("/dashboard/users")
    assert _listed(everyone.text)[0] == "other"


async def test_admin_erases_a_user_after_confirming(
    admin: httpx.AsyncClient, authed: httpx.AsyncClient, services: Services
) -> None:
    r = await authed.put("/api/v1/users/ana", json={"email": "ana@example.com", "name": "Ana"})
    assert r.status_code in (200, 201), r.text
    body = {"user_id": "ana", "type": "t", "title": "hello"}
    assert (await authed.post("/api/v1/notifications", json=body)).status_code == 202

    user_page = await admin.get("/dashboard/users/ana")
    assert 'id="erase-link"' in user_page.text
    form = await admin.get("/dashboard/users/ana/erase")
    assert form.status_code == 200 and "email, name" in form.text
    csrf = csrf_of(form.text)
    no_csrf = await admin.post("/dashboard/users/ana/erase", data={"confirm": "ana"})
    assert no_csrf.status_code == 403 and no_csrf.json()["error"]["code"] == "csrf_failed"
    wrong = await admin.post("/dashboard/users/ana/erase", data={"csrf": csrf, "confirm": "an"})
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "validation_failed"
    assert (await authed.get("/api/v1/users/ana")).status_code == 200  # nothing erased yet

    done = await admin.post("/dashboard/users/ana/erase", data={"csrf": csrf, "confirm": "ana"})
    assert done.status_code == 303
    shown = await admin.get(done.headers["location"])
    assert 'id="erased"' in shown.text and "erased:" in shown.text
    assert (await authed.get("/api/v1/users/ana")).status_code == 404
    inbox = await authed.get("/api/v1/notifications", params={"user_id": "ana"})
    assert inbox.json()["items"] == []

    [row] = await services.dashboard.audit_page(action="user.erase")
    assert row["via"] == "dashboard" and row["target"] == "user:ana"
    assert row["before"]["fields_set"] == ["email", "name"]
    assert row["after"]["rows"]["notifications"] == 1
    assert row["after"]["pseudonym"].startswith("erased:")
    assert "ana@example.com" not in str(row)


async def test_read_only_session_cannot_erase(
    web: httpx.AsyncClient, authed: httpx.AsyncClient, services: Services
) -> None:
    assert (await authed.put("/api/v1/users/bob", json={"name": "Bob"})).status_code in (200, 201)
    _, read_key = await services.auth.create_api_key("viewer", ["read"])
    assert (await sign_in(web, read_key)).status_code == 303
    user_page = await web.get("/dashboard/users/bob")
    assert 'id="erase-link"' not in user_page.text
    assert (await web.get("/dashboard/users/bob/erase")).status_code == 403
    listed = await web.get("/dashboard/users")
    r = await web.post(
        "/dashboard/users/bob/erase", data={"csrf": csrf_of(listed.text), "confirm": "bob"}
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert (await authed.get("/api/v1/users/bob")).status_code == 200
    assert await services.dashboard.audit_page(action="user.erase") == []
