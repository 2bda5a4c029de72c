"""Scheduled sends and open batches across ``clarion serve`` being SIGKILLed and started
again, twice (docs/scheduling.md "a restart loses nothing", docs/batching.md "each batch
flushes once").

Sends come due before, during and after each outage; batches open before a kill and
are due while the server is down. Afterwards every scheduled send was written once, never
before its time and at most 30 s after it (or, for one that came due while no server ran,
30 s after the server was ready again); every batch became exactly one folded
notification, none before its window closed.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server, clarion_env, run_cli, start_server
from tests.faults.nodes_support import write_result

WINDOW = 12  # seconds a batch stays open
LATE = 30.0  # the most a scheduled send may be late
#: A send due this shortly before a kill may not have been picked up by the killed
#: process (the pipeline loop looks every 0.5 s): it counts as due during the outage.
KILL_MARGIN = 2.0


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


class Api:
    def __init__(self, server: Server) -> None:
        self.client = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {server.key}"}, timeout=60
        )

    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        r = self.client.post("/api/v1/notifications", json=body)
        assert r.status_code == 202, r.text
        return dict(r.json())

    def inbox(self, user: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"user_id": user, "limit": 100}
            if cursor:
                params["cursor"] = cursor
            r = self.client.get("/api/v1/notifications", params=params)
            assert r.status_code == 200, r.text
            items += r.json()["items"]
            cursor = r.json()["next_cursor"]
            if not cursor:
                return items


@pytest.mark.faults
@pytest.mark.timeout(900)
def test_scheduled_sends_and_batches_across_sigkill(tmp_path: Path) -> None:
    env = clarion_env(tmp_path, CLARION_LOG_LEVEL="info")
    key = run_cli(env, "api-key", "create", "--name", "restart", cwd=tmp_path).strip()
    server = start_server(tmp_path, env, key)
    api = Api(server)
    tag = uuid.uuid4().hex[:6]
    sched_users = [f"s{i}-{tag}" for i in range(3)]
    scheduled: dict[str, dict[str, Any]] = {}  # scheduled send id -> what was asked
    batches: dict[str, dict[str, Any]] = {}  # user -> its batch round
    ups: list[tuple[float, float | None]] = []  # (ready, killed) per server life, epoch s
    servers = [server]
    try:
        r = api.client.put(
            "/api/v1/notifications/batching/rules/follow",
            json={"strategy": "window", "window_seconds": WINDOW},
        )
        assert r.status_code == 200, r.text
        ups.append((time.time(), None))
        base = datetime.now(UTC)
        # one send due every second from +5 s to +64 s, users in turn
        for i in range(60):
            user = sched_users[i % len(sched_users)]
            when = base + timedelta(seconds=5 + i)
            answer = api.post(
                {"user_id": user, "type": "reminder", "title": f"r{i}", "scheduled_for": iso(when)}
            )
            (sid,) = answer["scheduled"]
            scheduled[sid] = {"user": user, "title": f"r{i}", "due": when}

        def open_batches(round_: int) -> None:
            for j in range(4):
                user = f"b{round_}{j}-{tag}"
                opened = time.time()
                for actor in ["Ana", "Bo", "Cy"]:
                    answer = api.post(
                        {
                            "user_id": user,
                            "type": "follow",
                            "title": "New follower",
                            "data": {"actor": actor},
                        }
                    )
                    assert answer["ids"] == [] and len(answer["batched"]) == 1, answer
                batches[user] = {"round": round_, "opened": opened, "items": 3}

        def kill_and_restart(down_for: float) -> None:
            nonlocal api
            old = servers[-1]
            old.proc.kill()  # SIGKILL: no drain, no goodbye
            old.proc.wait(10)
            ups[-1] = (ups[-1][0], time.time())
            api.client.close()
            time.sleep(down_for)
            new = start_server(tmp_path, env, key)
            servers.append(new)
            ups.append((time.time(), None))
            api = Api(new)

        open_batches(0)  # due at about +WINDOW, while the server is down
        time.sleep(8)
        kill_and_restart(down_for=8)
        open_batches(1)
        time.sleep(5)
        kill_and_restart(down_for=10)
        last_due = max(s["due"] for s in scheduled.values()).timestamp()
        time.sleep(max(0.0, last_due - time.time()) + 5)

        # let everything come out (the bound is checked below, not here)
        deadline = time.time() + 120
        while time.time() < deadline:
            pending = api.client.get(
                "/api/v1/notifications/scheduled", params={"status": "scheduled"}
            ).json()["items"]
            still_open = [
                u
                for u in batches
                if api.client.get("/api/v1/notifications/batches", params={"user_id": u}).json()[
                    "items"
                ]
            ]
            if not pending and not still_open:
                break
            time.sleep(1)

        # --- scheduled sends ------------------------------------------------------------
        inboxes = {u: api.inbox(u) for u in sched_users}
        by_title = {u: Counter(n["title"] for n in inboxes[u]) for u in sched_users}
        early, late, lost, dup, lateness, counted = [], [], [], [], [], []
        down_windows = [(killed, nxt[0]) for (_, killed), nxt in itertools.pairwise(ups)]
        for sid, s in scheduled.items():
            row = api.client.get(f"/api/v1/notifications/scheduled/{sid}").json()
            copies = by_title[s["user"]][s["title"]]
            if row["status"] != "sent" or copies == 0:
                lost.append((s["title"], row["status"]))
                continue
            if copies > 1:
                dup.append((s["title"], copies))
            (note,) = [n for n in inboxes[s["user"]] if n["title"] == s["title"]][:1]
            assert note["id"] == row["notification_id"], (note, row)
            written = parse(note["created_at"]).timestamp()
            due = s["due"].timestamp()
            lateness.append(written - due)
            if written < due:
                early.append((s["title"], round(written - due, 3)))
            # due while no server ran (or in the last poll rounds before the kill, which
            # the killed loop may not have reached): the clock starts at the next ready
            start = due
            for killed, ready in down_windows:
                if killed is not None and killed - KILL_MARGIN <= due < ready:
                    start = ready
            counted.append(written - start)
            if written - start > LATE:
                late.append((s["title"], round(written - due, 2), round(written - start, 2)))

        # --- batches --------------------------------------------------------------------
        digests: dict[str, int] = {}
        folded_counts: dict[str, list[int]] = {}
        early_digests = []
        for user, b in batches.items():
            folds = [n for n in api.inbox(user) if n["type"] == "follow"]
            digests[user] = len(folds)
            folded_counts[user] = [int(n["data"].get("count", 1)) for n in folds]
            for n in folds:
                if parse(n["created_at"]).timestamp() < b["opened"] + WINDOW - 0.5:
                    early_digests.append(user)

        figures = {
            "kills": len(servers) - 1,
            "server_lives": [
                {"ready": round(r - ups[0][0], 2), "killed": round(k - ups[0][0], 2) if k else None}
                for r, k in ups
            ],
            "scheduled": len(scheduled),
            "delivered": len(scheduled) - len(lost),
            "lost": lost,
            "duplicated": dup,
            "early": early,
            "late_over_30s": late,
            "lateness_max_s": round(max(lateness), 2) if lateness else None,
            "lateness_counted_max_s": round(max(counted), 2) if counted else None,
            "lateness_p50_s": round(sorted(lateness)[len(lateness) // 2], 2) if lateness else None,
            "batches": len(batches),
            "digests_per_batch": digests,
            "items_per_digest": folded_counts,
            "early_digests": early_digests,
        }
        write_result("restart_schedules", figures)

        assert not lost, figures
        assert not dup, figures
        assert not early, figures
        assert not late, figures
        assert all(n == 1 for n in digests.values()), figures
        assert all(c == [3] for c in folded_counts.values()), figures
        assert not early_digests, figures
    finally:
        api.client.close()
        for s in servers:
            s.stop()
