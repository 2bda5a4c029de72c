"""An experiment through a real ``clarion serve``: created and started over the API, a
send to 2,000 users, reads through the users' own tokens at different rates per variant,
and the automatic winner taking over the next sends."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import httpx
import pytest

from clarion.domain.experiment_assignment import assign
from tests.e2e.conftest import clarion_env, start_server

N = "/api/v1/notifications"
X = f"{N}/ab-tests"
pytestmark = pytest.mark.e2e
READ_RATES = {"control": 0.10, "bold": 0.30}


async def test_the_better_variant_wins_and_takes_over(tmp_path: Path) -> None:
    env = clarion_env(tmp_path, CLARION_PIPELINE_POLL_SECONDS="0.2")
    server = await asyncio.to_thread(start_server, tmp_path, env)
    h = {"Authorization": f"Bearer {server.key}"}
    try:
        async with httpx.AsyncClient(base_url=server.url, headers=h, timeout=30) as c:
            r = await c.post(
                X,
                json={
                    "name": "Bold title",
                    "target_type": "digest",
                    "variants": [
                        {"key": "control", "weight": 50},
                        {"key": "bold", "weight": 50, "title": "Your week, in 5 lines"},
                    ],
                    "baseline": 0.1,
                    "mde": 0.5,
                    "auto_winner": True,
                },
            )
            assert r.status_code == 201, r.text
            xid = r.json()["id"]
            assert (await c.post(f"{X}/{xid}/start")).status_code == 200
            users = [f"e2e-{i}" for i in range(2000)]
            for part in (users[:1000], users[1000:]):
                r = await c.post(N, json={"user_ids": part, "type": "digest", "title": "Weekly"})
                assert r.status_code == 202 and r.json()["accepted"] == 1000, r.text

            weights = [("control", 50.0), ("bold", 50.0)]
            rnd = random.Random(7)
            readers = [u for u in users if rnd.random() < READ_RATES[assign(xid, u, weights, 0)]]
            sem = asyncio.Semaphore(16)

            async def read(user: str) -> None:
                async with sem:
                    token = (await c.post(f"/api/v1/users/{user}/token")).json()["token"]
                    mine = {"Authorization": f"Bearer {token}"}
                    [item] = (await c.get(N, headers=mine)).json()["items"]
                    expected = (
                        "Your week, in 5 lines"
                        if assign(xid, user, weights, 0) == "bold"
                        else "Weekly"
                    )
                    assert item["title"] == expected
                    r = await c.post(f"{N}/{item['id']}/read", headers=mine)
                    assert r.status_code == 200

            await asyncio.gather(*(read(u) for u in readers))

            deadline = time.monotonic() + 60
            while True:
                res = (await c.get(f"{X}/{xid}/results")).json()
                arms = {a["variant"]: a for a in res["arms"]}
                if sum(a["successes"] for a in arms.values()) == len(readers):
                    break
                assert time.monotonic() < deadline, res
                await asyncio.sleep(0.3)
            assert sum(a["users"] for a in arms.values()) == 2000
            assert res["srm"]["flagged"] is False
            assert res["verdict"]["state"] == "winner" and res["winner"] == "bold", res["verdict"]
            assert arms["bold"]["prob_beats_control"] > 0.99
            assert (await c.get(f"{X}/{xid}")).json()["status"] == "completed"

            # The winner takes every later send, for new users and control's alike.
            later = ["newcomer", *[u for u in users if assign(xid, u, weights, 0) == "control"][:5]]
            await c.post(N, json={"user_ids": later, "type": "digest", "title": "Weekly"})
            for user in later:
                items = (await c.get(N, params={"user_id": user})).json()["items"]
                assert items[0]["title"] == "Your week, in 5 lines", user
    finally:
        await asyncio.to_thread(server.stop)
