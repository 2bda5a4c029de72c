"""Experiments created and promoted, templates previewed and saved, a test send: each
through the dashboard's forms, each written to the audit log."""

from __future__ import annotations

import json

import httpx

from .conftest import csrf_of

TEMPLATE = {
    "key": "welcome",
    "kind": "simple",
    "default_locale": "en",
    "bodies": {
        "en": {"in_app.title": "Hi {{ data.name }}", "email.subject": "Welcome {{ data.name }}"},
        "fr": {"in_app.title": "Salut {{ data.name }}"},
    },
}


async def _audit(admin: httpx.AsyncClient) -> list[dict[str, object]]:
    r = await admin.get("/dashboard/audit/export")
    return [json.loads(line) for line in r.text.splitlines()]


async def test_experiment_created_started_and_promoted(admin: httpx.AsyncClient) -> None:
    page = await admin.get("/dashboard/experiments")
    csrf = csrf_of(page.text)
    bad = await admin.post("/dashboard/experiments", data={"csrf": csrf, "body": '{"name": 1}'})
    assert bad.status_code == 422 and 'id="error"' in bad.text
    body = {
        "name": "Shorter title",
        "target_type": "sale",
        "variants": [{"key": "control", "weight": 50}, {"key": "short", "weight": 50}],
        "metric": "read",
        "baseline": 0.2,
        "mde": 0.2,
    }
    r = await admin.post("/dashboard/experiments", data={"csrf": csrf, "body": json.dumps(body)})
    assert r.status_code == 303
    url = r.headers["location"]
    for action, extra in (("start", {}), ("promote", {"variant": "short"})):
        r = await admin.post(f"{url}/transition", data={"csrf": csrf, "action": action, **extra})
        assert r.status_code == 303, r.text
    shown = await admin.get(url)
    assert 'id="exp-status">completed' in shown.text and "winner <strong>short" in shown.text
    actions = [row["action"] for row in await _audit(admin)]
    assert actions == ["experiment.promote", "experiment.start", "experiment.create"]


async def test_template_preview_and_save(
    admin: httpx.AsyncClient, authed: httpx.AsyncClient
) -> None:
    assert (await authed.post("/api/v1/templates", json=TEMPLATE)).status_code == 201
    page = await admin.get("/dashboard/templates/welcome")
    assert page.status_code == 200 and "Hi Ana" in page.text and "Welcome Ana" in page.text
    form = {
        "csrf": csrf_of(page.text),
        "kind": "simple",
        "default_locale": "en",
        "bodies": json.dumps({"en": {"in_app.title": "Hello {{ data.name }}!"}}),
        "sample": json.dumps({"data": {"name": "Zoé"}}),
        "locale": "",
    }
    shown = await admin.post(
        "/dashboard/templates/welcome/preview",
        data=form,
        headers={"X-Dashboard-Fragment": "preview"},
    )
    assert shown.status_code == 200 and "Hello Zoé!" in shown.text and "<html" not in shown.text
    broken = {**form, "bodies": json.dumps({"en": {"in_app.title": "{{ data.name "}})}
    r = await admin.post("/dashboard/templates/welcome", data=broken)
    assert r.status_code == 422 and 'id="compile-errors"' in r.text
    assert "bodies.en.in_app.title" in r.text
    r = await admin.post("/dashboard/templates/welcome", data=form)
    assert r.status_code == 303
    stored = (await authed.get("/api/v1/templates/welcome")).json()
    assert stored["version"] == 2
    row, api = await _audit(admin)  # newest first: the dashboard's save, the API's create
    assert api["via"] == "api" and api["action"] == "POST /api/v1/templates"
    assert row["via"] == "dashboard" and row["action"] == "template.replace"
    assert row["target"] == "template:welcome"
    assert row["before"]["version"] == 1 and row["after"]["version"] == 2  # type: ignore[index]


async def test_story_shows_each_channel_as_rendered(
    admin: httpx.AsyncClient, authed: httpx.AsyncClient
) -> None:
    assert (await authed.post("/api/v1/templates", json=TEMPLATE)).status_code == 201
    body = {
        "user_id": "ana",
        "type": "welcome",
        "template_key": "welcome",
        "data": {"name": "Ana"},
        "channels": ["in_app", "email"],
    }
    r = await authed.post("/api/v1/notifications", json=body)
    assert r.status_code == 202, r.text
    story = await admin.get(f"/dashboard/notifications/{r.json()['ids'][0]}")
    assert 'data-channel="email"' in story.text and "Welcome Ana" in story.text
    assert "Hi Ana" in story.text


async def test_user_page_and_test_send(admin: httpx.AsyncClient) -> None:
    page = await admin.get("/dashboard/users/ana")
    assert page.status_code == 200 and "Empty inbox." in page.text
    r = await admin.post(
        "/dashboard/users/ana/test",
        data={"csrf": csrf_of(page.text), "title": "Ping from ops", "channel": "in_app"},
    )
    assert r.status_code == 303
    page = await admin.get(r.headers["location"])
    assert "Ping from ops" in page.text and 'id="sent"' in page.text
    [row] = await _audit(admin)
    assert row["action"] == "notification.test_send" and row["target"] == "user:ana"
