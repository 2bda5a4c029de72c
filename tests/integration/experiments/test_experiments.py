"""A/B experiments in process on both databases: configuration and its refusals, the life
of an experiment, sends shaped per variant with a holdout, stable assignment, outcomes
counted once per user, results, and the automatic winner taking over."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from clarion.domain.experiment_assignment import HOLDOUT, assign
from clarion.domain.types import ExperimentStatus
from clarion.errors import LiveTargetTaken
from clarion.services.clock import utcnow
from clarion.services.container import Services
from clarion.store import experiments as exp_store
from clarion.store.schema import events, experiment_assignments, notifications

N = "/api/v1/notifications"
X = f"{N}/ab-tests"


def _body(**extra: Any) -> dict[str, Any]:
    return {
        "name": "Shorter title",
        "target_type": "promo",
        "variants": [
            {"key": "control", "weight": 50},
            {"key": "short", "weight": 50, "title": "Sale!", "channels": ["in_app"]},
        ],
        **extra,
    }


async def _create(authed: httpx.AsyncClient, **extra: Any) -> dict[str, Any]:
    r = await authed.post(X, json=_body(**extra))
    assert r.status_code == 201, r.text
    got: dict[str, Any] = r.json()
    return got


async def _titles(services: Services) -> dict[str, str]:
    async with services.db.connect() as conn:
        rows = await conn.execute(select(notifications.c.user_id, notifications.c.title))
        return {u: t for u, t in rows}


@pytest.mark.parametrize(
    "bad",
    [
        {"variants": [{"key": "a", "weight": 100}]},  # fewer than 2
        {"variants": [{"key": "a", "weight": 50}, {"key": "b", "weight": 40}]},  # not 100
        {"variants": [{"key": "a", "weight": 50}, {"key": "a", "weight": 50}]},  # twice
        {"variants": [{"key": "holdout", "weight": 50}, {"key": "b", "weight": 50}]},
        {"metric": "revenue"},
        {"holdout": 80},
        {"target_type": None},  # no target
        {"target_template": "welcome"},  # two targets
        {"variants": [{"key": "a", "weight": 50}, {"key": "b", "weight": 50, "channels": ["fax"]}]},
    ],
)
async def test_bad_configuration_is_refused_and_changes_nothing(
    authed: httpx.AsyncClient, bad: dict[str, Any]
) -> None:
    r = await authed.post(X, json=_body(**bad))
    assert r.status_code == 422, r.text
    assert (await authed.get(X)).json()["items"] == []


async def test_life_of_an_experiment(authed: httpx.AsyncClient, services: Services) -> None:
    made = await _create(authed)
    assert (
        made["status"] == "draft" and made["planned_per_arm"] > 100 and made["control"] == "control"
    )
    xid = made["id"]
    # Nothing is assigned before it starts.
    await authed.post(N, json={"user_id": "u0", "type": "promo", "title": "Big sale"})
    assert (await _titles(services))["u0"] == "Big sale"
    assert (await authed.post(f"{X}/{xid}/pause")).status_code == 409  # not running
    assert (await authed.post(f"{X}/{xid}/start")).json()["status"] == "running"
    other = await _create(authed, name="Another")
    clash = await authed.post(f"{X}/{other['id']}/start")
    assert clash.status_code == 409  # one live experiment per type
    assert clash.json()["error"]["code"] == "conflict"
    assert clash.json()["error"]["details"] == {"target_type": "promo", "target_template": None}
    assert "same target is live" in clash.json()["error"]["message"]
    assert (await authed.get(f"{X}/{other['id']}")).json()["status"] == "draft"
    assert (await authed.patch(f"{X}/{xid}", json={"metric": "clicked"})).status_code == 409
    bad = await authed.post(f"{X}/{xid}/promote", json={"variant": "nope"})
    assert bad.status_code == 422
    assert (await authed.post(f"{X}/{xid}/pause")).json()["status"] == "paused"
    assert (await authed.post(f"{X}/{xid}/stop")).json()["status"] == "stopped"
    assert (await authed.post(f"{X}/{xid}/start")).status_code == 409  # stopped is final
    assert (await authed.delete(f"{X}/{xid}")).status_code == 204
    assert (await authed.get(f"{X}/{xid}")).status_code == 404


async def test_sends_follow_the_assignment_and_the_holdout_gets_nothing(
    authed: httpx.AsyncClient, services: Services
) -> None:
    made = await _create(authed, holdout=20)
    xid = made["id"]
    await authed.post(f"{X}/{xid}/start")
    users = [f"user-{i}" for i in range(60)]
    r = await authed.post(N, json={"user_ids": users, "type": "promo", "title": "Big sale"})
    assert r.status_code == 202 and r.json()["accepted"] == 60
    weights = [("control", 50.0), ("short", 50.0)]
    expected = {u: assign(xid, u, weights, 0.2) for u in users}
    titles = await _titles(services)
    for u, v in expected.items():
        if v == HOLDOUT:
            assert u not in titles
        else:
            assert titles[u] == ("Sale!" if v == "short" else "Big sale"), u
    held = [u for u, v in expected.items() if v == HOLDOUT]
    assert held  # 20 % of 60
    async with services.db.connect() as conn:
        rows = await conn.execute(
            select(events.c.user_id, events.c.variant).where(events.c.reason == "holdout")
        )
        assert sorted(u for u, _ in rows) == sorted(held)
        arms = await exp_store.arms_of(conn, xid)
    assert sum(a.users for a in arms.values()) == 60

    # New weights move nobody already assigned.
    r = await authed.patch(
        f"{X}/{xid}",
        json={"variants": [{"key": "control", "weight": 10}, {"key": "short", "weight": 90}]},
    )
    assert r.status_code == 200, r.text
    await authed.post(N, json={"user_ids": users, "type": "promo", "title": "Big sale"})
    async with services.db.connect() as conn:
        rows = await conn.execute(
            select(experiment_assignments.c.user_id, experiment_assignments.c.variant)
        )
        assert {u: v for u, v in rows} == expected


async def test_outcomes_are_counted_once_per_user_and_results_read_them(
    authed: httpx.AsyncClient, services: Services
) -> None:
    xid = (await _create(authed))["id"]
    await authed.post(f"{X}/{xid}/start")
    users = [f"reader-{i}" for i in range(40)]
    ids = (await authed.post(N, json={"user_ids": users, "type": "promo", "title": "T"})).json()[
        "ids"
    ]
    for nid in ids[:10]:
        await authed.post(f"{N}/{nid}/read")
        await authed.post(f"{N}/{nid}/unread")
        await authed.post(f"{N}/{nid}/read")  # twice: one user, one outcome
    await services.rollups.catch_up()
    res = (await authed.get(f"{X}/{xid}/results")).json()
    arms = {a["variant"]: a for a in res["arms"]}
    assert sum(a["users"] for a in arms.values()) == 40
    assert sum(a["successes"] for a in arms.values()) == 10
    assert res["verdict"]["state"] in ("running", "no_difference")
    assert res["srm"] is not None and res["srm"]["flagged"] is False
    assert 0 <= arms["short"]["prob_beats_control"] <= 1


async def test_automatic_winner_takes_all_traffic(
    authed: httpx.AsyncClient, services: Services
) -> None:
    xid = (await _create(authed, auto_winner=True))["id"]
    await authed.post(f"{X}/{xid}/start")
    # Counters as a long-running experiment would have them: "short" clearly better.
    async with services.db.begin() as conn:
        await exp_store.add_to_arms(
            conn,
            xid,
            {"control": {"users": 20000, "read": 2000}, "short": {"users": 20000, "read": 2600}},
        )
    res = (await authed.get(f"{X}/{xid}/results")).json()
    assert res["verdict"]["state"] == "winner" and res["winner"] == "short", res["verdict"]
    assert res["experiment"]["status"] == "completed" and res["winner_at"] is not None
    users = [f"late-{i}" for i in range(20)]
    await authed.post(N, json={"user_ids": users, "type": "promo", "title": "Big sale"})
    titles = await _titles(services)
    assert all(titles[u] == "Sale!" for u in users)
    async with services.db.connect() as conn:
        promoted = (await conn.execute(select(events).where(events.c.type == "promoted"))).all()
    assert [(p.experiment, p.variant) for p in promoted] == [(xid, "short")]


async def test_users_recorded_elsewhere_keep_their_variant(
    authed: httpx.AsyncClient, services: Services
) -> None:
    """Users another process recorded (before the weights changed) get their recorded
    variant, though this process would have hashed them into the other one; they are not
    counted again, and this process then knows them."""
    xid = (await _create(authed, holdout=20))["id"]
    await authed.post(f"{X}/{xid}/start")
    weights = [("control", 50.0), ("short", 50.0)]
    users = [f"elsewhere-{i}" for i in range(30)]
    hashed = {u: assign(xid, u, weights, 0.2) for u in users}
    flip = {"control": "short", "short": "control", HOLDOUT: "control"}
    recorded = {u: flip[v] for u, v in list(hashed.items())[:20]}  # the last 10: new
    async with services.db.begin() as conn:
        await conn.execute(
            experiment_assignments.insert(),
            [
                {"experiment_id": xid, "user_id": u, "variant": v, "assigned_at": utcnow()}
                for u, v in recorded.items()
            ],
        )
    expected = {**hashed, **recorded}
    for chunk in (users[:15], users[15:]):  # two sends, each with old and new users
        r = await authed.post(N, json={"user_ids": chunk, "type": "promo", "title": "Big sale"})
        assert r.status_code == 202, r.text
    titles = await _titles(services)
    for u, v in expected.items():
        if v == HOLDOUT:
            assert u not in titles
        else:
            assert titles[u] == ("Sale!" if v == "short" else "Big sale"), (u, v)
    async with services.db.connect() as conn:
        rows = await conn.execute(
            select(experiment_assignments.c.user_id, experiment_assignments.c.variant)
        )
        assert {u: v for u, v in rows} == expected
        variants = await conn.execute(select(notifications.c.user_id, notifications.c.variant))
        assert {u: v for u, v in variants} == {u: v for u, v in expected.items() if v != HOLDOUT}
        arms = await exp_store.arms_of(conn, xid)
    assert sum(a.users for a in arms.values()) == 10  # the new ones only
    # Known now: a second send to all of them records nothing and reads nothing new.
    await authed.post(N, json={"user_ids": users, "type": "promo", "title": "Again"})
    async with services.db.connect() as conn:
        arms = await exp_store.arms_of(conn, xid)
    assert sum(a.users for a in arms.values()) == 10


async def test_the_store_refuses_a_second_live_experiment_on_a_target(
    authed: httpx.AsyncClient, services: Services
) -> None:
    """The live-target index's refusal reaches services as the typed error, whatever the
    driver's words for it; a draft or stopped experiment on the same target is no clash."""
    first, second = (await _create(authed))["id"], (await _create(authed, name="B"))["id"]
    async with services.db.begin() as conn:
        await exp_store.change(conn, first, status=ExperimentStatus.RUNNING)
    with pytest.raises(LiveTargetTaken):
        async with services.db.begin() as conn:
            await exp_store.change(conn, second, status=ExperimentStatus.PAUSED)
    async with services.db.begin() as conn:
        await exp_store.change(conn, first, status=ExperimentStatus.STOPPED)
        await exp_store.change(conn, second, status=ExperimentStatus.RUNNING)
    async with services.db.connect() as conn:
        live = await exp_store.live(conn)
        stopped = await exp_store.list_all(conn, ExperimentStatus.STOPPED, 10)
    assert [(e.id, e.status) for e in live] == [(second, ExperimentStatus.RUNNING)]
    assert [e.id for e in stopped] == [first]


async def test_the_first_pipeline_pass_decides_and_the_next_waits_a_minute(
    authed: httpx.AsyncClient, services: Services
) -> None:
    clear = {"control": {"users": 20000, "read": 2000}, "short": {"users": 20000, "read": 2600}}
    first = (await _create(authed, auto_winner=True))["id"]
    second = (await _create(authed, auto_winner=True, target_type="digest"))["id"]
    await authed.post(f"{X}/{first}/start")
    async with services.db.begin() as conn:
        await exp_store.add_to_arms(conn, first, clear)
    assert await services.experiments.run_once() == 1  # a new service decides at once
    assert (await authed.get(f"{X}/{first}")).json()["status"] == "completed"
    await authed.post(f"{X}/{second}/start")
    async with services.db.begin() as conn:
        await exp_store.add_to_arms(conn, second, clear)
    assert await services.experiments.run_once() == 0  # within the minute: not yet
    assert (await authed.get(f"{X}/{second}")).json()["status"] == "running"
