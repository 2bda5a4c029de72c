"""Preferences through the API on both backends: defaults, round trip, validation that
changes nothing, and user tokens limited to their own user."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from clarion.domain.preferences import Preferences
from clarion.domain.types import ChannelName
from clarion.services.container import Services
from tests.integration.processing.conftest import err, user_client

P = "/api/v1/notifications/preferences"

DEFAULTS = {
    "channels": {},
    "types": {},
    "digest": {},
    "quiet_hours": None,
    "digest_time": "09:00",
    "timezone": "UTC",
}
DOC = {
    "channels": {"email": True, "sms": False},
    "types": {"follow": {"email": False}, "invoice": {"sms": True}},
    "digest": {"comment": "daily", "like": "hourly"},
    "quiet_hours": {
        "start": "22:00",
        "end": "07:00",
        "timezone": "Europe/Lisbon",
        "weekdays": [0, 1, 2, 3, 4],
    },
    "digest_time": "08:30",
    "timezone": "Europe/Lisbon",
}


async def test_defaults_for_a_user_without_preferences(authed: httpx.AsyncClient) -> None:
    r = await authed.get(f"{P}/nobody")
    assert r.status_code == 200 and r.json() == DEFAULTS


async def test_round_trip(authed: httpx.AsyncClient, services: Services) -> None:
    r = await authed.put(f"{P}/ana", json=DOC)
    assert r.status_code == 200, r.text
    assert r.json() == DOC
    assert (await authed.get(f"{P}/ana")).json() == DOC
    # a quiet-hours timezone defaults to the preference timezone
    doc = {"timezone": "Asia/Tokyo", "quiet_hours": {"start": "23:00", "end": "06:00"}}
    body = (await authed.put(f"{P}/bo", json=doc)).json()
    assert body["quiet_hours"]["timezone"] == "Asia/Tokyo"
    assert body["quiet_hours"]["weekdays"] == list(range(7))

    prefs = await services.preferences.get_preferences("ana")
    assert prefs == Preferences.from_json(DOC)
    assert not prefs.channel_enabled("follow", ChannelName.EMAIL)


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"channels": {"pager": True}}, "channels.pager"),
        ({"types": {"follow": {"fax": False}}}, "types.follow.fax"),
        ({"quiet_hours": {"start": "22:00", "end": "22:00"}}, "quiet_hours.end"),
        ({"quiet_hours": {"start": "25:00", "end": "07:00"}}, "quiet_hours.start"),
        ({"quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "X/Y"}}, None),
        ({"quiet_hours": {"start": "22:00", "end": "07:00", "weekdays": [7]}}, None),
        ({"quiet_hours": [1, 2]}, "quiet_hours"),
        ({"digest": {"like": "weekly"}}, "digest.like"),
        ({"channels": {"email": "yes"}}, "channels.email"),
        ({"digest_time": "9am"}, "digest_time"),
        ({"bogus": 1}, "bogus"),
    ],
)
async def test_invalid_is_422_and_unchanged(
    authed: httpx.AsyncClient, doc: dict[str, Any], field: str | None
) -> None:
    assert (await authed.put(f"{P}/ana", json=DOC)).status_code == 200
    r = await authed.put(f"{P}/ana", json=doc)
    assert r.status_code == 422, r.text
    e = err(r)
    assert e["code"] == "validation_failed"
    assert e["details"], e
    if field is not None:
        assert field in [d["field"] for d in e["details"]], e["details"]
    assert (await authed.get(f"{P}/ana")).json() == DOC


async def test_every_problem_is_reported_at_once(authed: httpx.AsyncClient) -> None:
    doc = {"timezone": "Nope/Nope", "channels": {"pager": True}, "digest": {"x": "never"}}
    r = await authed.put(f"{P}/ana", json=doc)
    fields = {d["field"] for d in err(r)["details"]}
    assert {"timezone", "channels.pager", "digest.x"} <= fields


async def test_body_must_be_an_object(authed: httpx.AsyncClient) -> None:
    r = await authed.put(f"{P}/ana", json=["channels"])
    assert r.status_code == 422


async def test_user_token_reads_and_writes_its_own_only(
    client: httpx.AsyncClient, authed: httpx.AsyncClient, services: Services
) -> None:
    async with await user_client(client, services, "ana") as ana:
        assert (await ana.get(f"{P}/ana")).json() == DEFAULTS
        r = await ana.put(f"{P}/ana", json={"channels": {"sms": False}})
        assert r.status_code == 200 and r.json()["channels"] == {"sms": False}
        assert (await authed.get(f"{P}/ana")).json()["channels"] == {"sms": False}

        r = await ana.get(f"{P}/bo")
        assert r.status_code == 403 and err(r)["code"] == "forbidden"
        r = await ana.put(f"{P}/bo", json={"channels": {"sms": False}})
        assert r.status_code == 403
    assert (await authed.get(f"{P}/bo")).json() == DEFAULTS


async def test_unauthenticated_is_401(client: httpx.AsyncClient) -> None:
    assert (await client.get(f"{P}/ana")).status_code == 401


async def test_get_many_for_the_pipeline(authed: httpx.AsyncClient, services: Services) -> None:
    await authed.put(f"{P}/ana", json=DOC)
    got = await services.preferences.get_many(["ana", "bo", "ana"])
    assert list(got) == ["ana", "bo"]
    assert got["ana"] == Preferences.from_json(DOC)
    assert got["bo"] == Preferences()
    assert await services.preferences.get_many([]) == {}
