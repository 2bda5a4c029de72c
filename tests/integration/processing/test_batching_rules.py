"""Batching rules through the API on both backends: replace the set, one type at a time,
validation that changes nothing, API key only."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from clarion.domain.batching import BatchRule, BatchStrategy
from clarion.services.container import Services
from tests.integration.processing.conftest import err, user_client

B = "/api/v1/notifications/batching/rules"

RULES = [
    {"type": "follow", "strategy": "window", "window_seconds": 600},
    {"type": "like", "strategy": "count", "count": 10},
    {"type": "comment", "strategy": "window_or_count", "window_seconds": 300, "count": 5},
    {"type": "digest.me", "strategy": "digest", "frequency": "daily", "digest_time": "18:00"},
]


def full(rule: dict[str, Any]) -> dict[str, Any]:
    return BatchRule.from_json(rule).to_json()


async def test_round_trip(authed: httpx.AsyncClient, services: Services) -> None:
    assert (await authed.get(B)).json() == []
    r = await authed.put(B, json=RULES)
    assert r.status_code == 200, r.text
    expected = sorted((full(x) for x in RULES), key=lambda x: x["type"])
    assert r.json() == expected
    assert (await authed.get(B)).json() == expected

    rules = await services.batching.rules()
    assert set(rules) == {"follow", "like", "comment", "digest.me"}
    assert rules["like"].strategy is BatchStrategy.COUNT

    r = await authed.put(B, json=RULES[:1])
    assert [x["type"] for x in r.json()] == ["follow"]
    assert set(await services.batching.rules()) == {"follow"}
    assert (await authed.put(B, json=[])).json() == []


async def test_one_type(authed: httpx.AsyncClient, services: Services) -> None:
    r = await authed.put(f"{B}/follow", json={"strategy": "count", "count": 3})
    assert r.status_code == 200, r.text
    assert r.json() == full({"type": "follow", "strategy": "count", "count": 3})
    r = await authed.put(
        f"{B}/follow", json={"type": "follow", "strategy": "window", "window_seconds": 5}
    )
    assert r.json()["strategy"] == "window"
    assert (await services.batching.rules())["follow"].window_seconds == 5

    r = await authed.put(f"{B}/follow", json={"type": "like", "strategy": "count", "count": 3})
    assert r.status_code == 422 and err(r)["details"][0]["field"] == "type"

    assert (await authed.delete(f"{B}/follow")).status_code == 204
    assert (await authed.get(B)).json() == []
    r = await authed.delete(f"{B}/follow")
    assert r.status_code == 404 and err(r)["code"] == "not_found"


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({"type": "x", "strategy": "sometimes"}, "[1].strategy"),
        ({"type": "x", "strategy": "window"}, "[1].window_seconds"),
        ({"type": "x", "strategy": "window", "window_seconds": 0}, "[1].window_seconds"),
        ({"type": "x", "strategy": "count", "count": 1}, "[1].count"),
        ({"type": "x", "strategy": "count", "count": 5, "window_seconds": 9}, "[1].window_seconds"),
        ({"type": "x", "strategy": "digest", "frequency": "weekly"}, "[1].frequency"),
        (
            {"type": "x", "strategy": "digest", "frequency": "daily", "digest_time": "7"},
            "[1].digest_time",
        ),
        (
            {"type": "x", "strategy": "digest", "frequency": "hourly", "digest_time": "07:00"},
            "[1].digest_time",
        ),
        ({"type": "", "strategy": "count", "count": 2}, "[1].type"),
        ({"type": "x", "strategy": "count", "count": 2, "extra": 1}, "[1].extra"),
        ({"type": "follow", "strategy": "count", "count": 2}, "[1].type"),  # duplicate type
    ],
)
async def test_invalid_set_is_422_and_unchanged(
    authed: httpx.AsyncClient, rule: dict[str, Any], field: str
) -> None:
    assert (await authed.put(B, json=RULES)).status_code == 200
    before = (await authed.get(B)).json()
    r = await authed.put(B, json=[RULES[0], rule])
    assert r.status_code == 422, r.text
    e = err(r)
    assert e["code"] == "validation_failed"
    assert e["details"][0]["field"] == field
    assert (await authed.get(B)).json() == before


async def test_api_key_only(
    client: httpx.AsyncClient, authed: httpx.AsyncClient, services: Services
) -> None:
    async with await user_client(client, services, "ana") as ana:
        assert (await ana.get(B)).status_code == 403
        assert (await ana.put(B, json=[])).status_code == 403
        assert (await ana.put(f"{B}/x", json={"strategy": "count", "count": 2})).status_code == 403
    async with httpx.AsyncClient(transport=client._transport, base_url=client.base_url) as anon:
        assert (await anon.get(B)).status_code == 401


@pytest.mark.parametrize("rule", [{}, {"strategy": "count", "count": 2}, {"type": "x"}, [], "x"])
async def test_incomplete_rules_are_422_not_500(authed: httpx.AsyncClient, rule: Any) -> None:
    r = await authed.put(B, json=[rule])
    assert r.status_code == 422, r.text
    r = await authed.put(f"{B}/x", json={"window_seconds": 5})
    assert r.status_code == 422, r.text
