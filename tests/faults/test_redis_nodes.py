"""Two ``clarion serve`` nodes on one PostgreSQL database and a private Redis: Redis is
killed (then restarted) or frozen (SIGSTOP, then SIGCONT) while notifications are sent
through both nodes and WebSocket clients of every user listen on both nodes.

What must hold (docs/realtime.md, "Degradation: Redis down"): every send is accepted;
every client gets every notification of its user, once (after a resume by cursor if its
socket was closed), and nothing of anyone else's; the status says ``degraded`` during the
outage and ``ok`` again by itself afterwards.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server, clarion_env, run_cli, start_server
from tests.e2e.test_realtime import SECRET, token_for
from tests.faults.nodes_support import (
    PrivateRedis,
    WsRecorder,
    fresh_pg_database,
    write_result,
)

USERS = 4
SEND_INTERVAL = 0.1  # one sender per node, each up to ~10 sends/s, users in turn
#: During the outage the nodes must acknowledge sends at this share of the rate they
#: had before it, at least (a ratio, so that a loaded machine moves both sides alike).
OUTAGE_MIN_RATE_SHARE = 0.25
#: No single send during the outage may take longer than this: RedisLink's socket
#: timeout is 2 s, the rest is slack for a loaded machine (sends took at most 1.8 s
#: with Redis killed, with the machine's load average at 13).
OUTAGE_MAX_LATENCY = 5.0
CLIENT_TIMEOUT = 15.0  # one POST; a longer stall counts as a failure to accept


async def status_of(api: httpx.AsyncClient) -> str:
    try:
        r = await api.get("/api/v1/notifications/system/status", timeout=10)
    except httpx.HTTPError as exc:
        return f"error:{type(exc).__name__}"
    if r.status_code != 200:
        return f"http:{r.status_code}"
    return str(r.json()["status"])


class Load:
    """Sends round-robin over nodes and users; each send has an Idempotency-Key and is
    retried with it until acknowledged, so every accepted id is known."""

    def __init__(self, apis: list[httpx.AsyncClient], users: list[str]) -> None:
        self.apis = apis
        self.users = users
        self.sent = 0
        self.codes: Counter[str] = Counter()  # every answer, retries included
        self.first_codes: Counter[str] = Counter()
        self.ids: dict[str, set[int]] = {u: set() for u in users}
        self.acks: list[tuple[float, float]] = []  # (started, latency), monotonic
        self.unacknowledged = 0
        self.stop = asyncio.Event()

    async def run(self) -> None:
        """One sender per node, so that a stall on one node does not hide the other."""
        await asyncio.gather(*(self._sender(i) for i in range(len(self.apis))))

    async def _sender(self, node: int) -> None:
        k = 0
        while not self.stop.is_set():
            user = self.users[k % len(self.users)]  # every node sends to every user
            k += 1
            await self.send_one(self.apis[node], user, f"{node}-{k}")
            await asyncio.sleep(SEND_INTERVAL)

    async def send_one(self, api: httpx.AsyncClient, user: str, n: str) -> None:
        self.sent += 1
        key = uuid.uuid4().hex
        body = {"user_id": user, "type": "fault", "title": f"n{n}"}
        for attempt in range(10):
            started = time.monotonic()
            try:
                r = await api.post(
                    "/api/v1/notifications",
                    json=body,
                    headers={"Idempotency-Key": key},
                    timeout=CLIENT_TIMEOUT,
                )
                code = str(r.status_code)
            except httpx.HTTPError as exc:
                r, code = None, f"error:{type(exc).__name__}"
            self.codes[code] += 1
            if attempt == 0:
                self.first_codes[code] += 1
            if r is not None and r.status_code == 202:
                self.acks.append((started, time.monotonic() - started))
                self.ids[user].update(r.json()["ids"])
                return
            await asyncio.sleep(1.0)
        self.unacknowledged += 1


async def stored_ids(api: httpx.AsyncClient, user: str) -> set[int]:
    ids: set[int] = set()
    cursor = None
    while True:
        params: dict[str, Any] = {"user_id": user, "limit": 100}
        if cursor:
            params["cursor"] = cursor
        r = await api.get("/api/v1/notifications", params=params, timeout=30)
        assert r.status_code == 200, r.text
        page = r.json()
        ids |= {item["id"] for item in page["items"]}
        cursor = page["next_cursor"]
        if not cursor:
            return ids


async def watch(
    apis: list[httpx.AsyncClient], log: list[tuple[float, int, str]], t0: float
) -> None:
    async def one(i: int, api: httpx.AsyncClient) -> None:
        while True:
            log.append((round(time.monotonic() - t0, 2), i, await status_of(api)))
            await asyncio.sleep(0.5)

    await asyncio.gather(*(one(i, api) for i, api in enumerate(apis)))


async def outage(tmp_path: Path, mode: str, seconds: float, test: str) -> None:
    redis = PrivateRedis(tmp_path / "redis")
    await asyncio.to_thread(redis.start)
    nodes: list[Server] = []
    recorders: list[WsRecorder] = []
    try:
        with fresh_pg_database("nodes") as pg_url:
            env = clarion_env(
                tmp_path,
                CLARION_DATABASE_URL=pg_url,
                CLARION_REDIS_URL=redis.url,
                CLARION_REDIS_PREFIX=f"nodes{uuid.uuid4().hex[:6]}",
                CLARION_SECRET_KEY=SECRET,
                CLARION_EMBEDDED_WORKER="false",
            )
            key = run_cli(env, "api-key", "create", "--name", "nodes", cwd=tmp_path).strip()
            for _ in range(2):
                nodes.append(await asyncio.to_thread(start_server, tmp_path, env, key))
            tag = uuid.uuid4().hex[:6]
            users = [f"u{i}-{tag}" for i in range(USERS)]
            for user in users:
                for i, node in enumerate(nodes):
                    rec = WsRecorder(
                        f"{user}@{i}", node.url, user, lambda u=user: token_for(u, ttl=3600)
                    )
                    await rec.start()
                    recorders.append(rec)
            auth = {"Authorization": f"Bearer {key}"}
            apis = [httpx.AsyncClient(base_url=n.url, headers=auth) for n in nodes]
            load = Load(apis, users)
            t0 = time.monotonic()
            statuses: list[tuple[float, int, str]] = []
            watcher = asyncio.create_task(watch(apis, statuses, t0))
            sender = asyncio.create_task(load.run())
            figures: dict[str, Any] = {"mode": mode, "outage_seconds": seconds, "users": USERS}
            try:
                await asyncio.sleep(3)
                assert [await status_of(api) for api in apis] == ["ok", "ok"], statuses[-4:]
                warm_from = t0 + 1.0  # before: past the first second's warm-up

                fault_at = time.monotonic()
                if mode == "kill":
                    redis.kill()
                else:
                    redis.freeze()
                await asyncio.sleep(seconds)
                restore_at = time.monotonic()
                if mode == "kill":
                    await asyncio.to_thread(redis.start)
                else:
                    redis.thaw()

                # recovery: both nodes report ok again
                recovered_at = None
                deadline = restore_at + 60
                while time.monotonic() < deadline:
                    if [await status_of(api) for api in apis] == ["ok", "ok"]:
                        recovered_at = time.monotonic()
                        break
                    await asyncio.sleep(0.25)
                await asyncio.sleep(3)  # some traffic after the recovery
                load.stop.set()
                await asyncio.wait_for(sender, 10 * CLIENT_TIMEOUT)
                expected = {u: ids for u, ids in load.ids.items()}
                for rec in recorders:
                    await rec.wait_for(expected[rec.user], timeout=30)
            finally:
                load.stop.set()
                watcher.cancel()
                sender.cancel()
                for rec in recorders:
                    await rec.stop()

            stored = {u: await stored_ids(apis[0], u) for u in users}
            for api in apis:
                await api.aclose()

            acknowledged = sum(len(v) for v in load.ids.values())
            per_client = {
                rec.name: {
                    "expected": len(expected[rec.user]),
                    "delivered": len(set(rec.counts) & expected[rec.user]),
                    "lost": sorted(rec.missing(expected[rec.user])),
                    "unexpected": sorted(rec.unexpected(expected[rec.user])),
                    "duplicated": rec.duplicated(),
                    "replayed": sum(rec.replayed.values()),
                    "connects": rec.connects,
                    "close_codes": rec.close_codes,
                    "connect_errors": rec.connect_errors,
                }
                for rec in recorders
            }
            during = [(i, s) for t, i, s in statuses if fault_at - t0 <= t <= restore_at - t0]
            lat = sorted(latency for _, latency in load.acks)
            in_outage = [a for a in load.acks if fault_at <= a[0] <= restore_at]
            before = [a for a in load.acks if warm_from <= a[0] < fault_at]
            rate_before = len(before) / (fault_at - warm_from)
            rate_during = len(in_outage) / (restore_at - fault_at)
            figures.update(
                sent=load.sent,
                acknowledged=acknowledged,
                unacknowledged=load.unacknowledged,
                stored=sum(len(v) for v in stored.values()),
                delivered=sum(c["delivered"] for c in per_client.values()),
                delivered_expected=sum(c["expected"] for c in per_client.values()),
                lost=sum(len(c["lost"]) for c in per_client.values()),
                unexpected=sum(len(c["unexpected"]) for c in per_client.values()),
                duplicated=sum(len(c["duplicated"]) for c in per_client.values()),
                status_codes=dict(load.codes),
                first_attempt_status_codes=dict(load.first_codes),
                send_latency_p50=lat[len(lat) // 2] if lat else None,
                send_latency_max=lat[-1] if lat else None,
                status_during_outage={
                    f"node{i}": dict(Counter(s for j, s in during if j == i)) for i in (0, 1)
                },
                acknowledged_during_outage=len(in_outage),
                ack_rate_before=round(rate_before, 2),
                ack_rate_during_outage=round(rate_during, 2),
                send_latency_max_during_outage=max((a[1] for a in in_outage), default=None),
                recovery_seconds=(
                    round(recovered_at - restore_at, 2) if recovered_at is not None else None
                ),
                clients=per_client,
            )
            write_result(test, figures)

            # every send accepted, first time, and stored
            assert load.unacknowledged == 0, figures["status_codes"]
            assert set(load.first_codes) == {"202"}, figures["first_attempt_status_codes"]
            assert all(stored[u] == load.ids[u] for u in users), "stored != acknowledged"
            # ... and kept being accepted, promptly, during the outage
            assert rate_during >= OUTAGE_MIN_RATE_SHARE * rate_before, figures
            assert figures["send_latency_max_during_outage"] <= OUTAGE_MAX_LATENCY, figures
            # every client: everything of its user, once, nothing else
            for name, c in per_client.items():
                assert not c["lost"], (name, c)
                assert not c["unexpected"], (name, c)
                assert not c["duplicated"], (name, c)
            # the status said so, and came back by itself
            for i in (0, 1):
                seen = {s for j, s in during if j == i}
                assert "degraded" in seen, (i, statuses)
                assert not {s for s in seen if s.startswith(("error", "http"))}, (i, statuses)
            assert recovered_at is not None, statuses[-6:]
    finally:
        for node in nodes:
            await asyncio.to_thread(node.stop)
        redis.stop()


#: Measured before the fix: nothing lost, but as the freeze begins sends stall for up to
#: 9 s (8.5 s in the 60 s run), so in the quick run the nodes acknowledged 0.5 sends/s
#: against 6.3 before it, and one node never answered ``degraded``. The fix is under way
#: in hub/redis*.py; when it lands these tests XPASS, which fails them (strict) until the
#: marker is removed.
@pytest.mark.faults
@pytest.mark.faults_quick
@pytest.mark.timeout(600)
async def test_redis_killed_quick(tmp_path: Path) -> None:
    await outage(tmp_path, "kill", 10, "redis_nodes_killed_quick")


@pytest.mark.faults
@pytest.mark.faults_quick
@pytest.mark.timeout(600)
async def test_redis_frozen_quick(tmp_path: Path) -> None:
    await outage(tmp_path, "freeze", 10, "redis_nodes_frozen_quick")


@pytest.mark.faults
@pytest.mark.timeout(900)
async def test_redis_killed_60s(tmp_path: Path) -> None:
    await outage(tmp_path, "kill", 60, "redis_nodes_killed_60s")


@pytest.mark.faults
@pytest.mark.timeout(900)
async def test_redis_frozen_60s(tmp_path: Path) -> None:
    await outage(tmp_path, "freeze", 60, "redis_nodes_frozen_60s")
