"""Content validation errors name the field the client sent: the kind-specific part is
sent as ``content`` (stored under ``content.extra``), so its problems say ``content.…``."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

N = "/api/v1/notifications"


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (
            {"template": "card", "content": {"fields": [{"label": "a", "value": True}]}},
            ["content.fields[0].value"],
        ),
        ({"template": "card", "content": {"header": "x"}}, ["content.fields"]),
        (
            {"template": "list", "content": {"items": [{"title": "x", "url": "nope"}]}},
            ["content.items[0].url"],
        ),
        (
            {"template": "timeline", "content": {"entries": [{"at": "noon", "title": "x"}]}},
            ["content.entries[0].at"],
        ),
        ({"template": "simple", "content": {"items": [{"title": "x"}]}}, ["content"]),
        (
            {"template": "card", "content": {"fields": [{"label": "a", "value": "b"}], "x": 1}},
            ["content.x"],
        ),
    ],
)
async def test_problems_name_the_content_field(
    authed: httpx.AsyncClient, body: dict[str, Any], fields: list[str]
) -> None:
    r = await authed.post(N, json={"user_id": "ana", "type": "t", "title": "T", **body})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "validation_failed"
    assert [d["field"] for d in error["details"]] == fields
    assert "extra" not in r.text
    r = await authed.get(N, params={"user_id": "ana"})
    assert r.json()["items"] == []


async def test_the_stored_payload_keeps_the_kind_specific_part_under_extra(
    authed: httpx.AsyncClient,
) -> None:
    content = {"fields": [{"label": "Amount", "value": 42}]}
    r = await authed.post(
        N,
        json={"user_id": "ana", "type": "t", "title": "T", "template": "card", "content": content},
    )
    assert r.status_code in (200, 201, 202), r.text
    item = (await authed.get(N, params={"user_id": "ana"})).json()["items"][0]
    assert item["content"]["extra"] == {"fields": [{"label": "Amount", "value": "42"}]}
