"""Secrets stay secret: API keys are stored only as hashes (searched for in a dump of the
SQLite file and of a PostgreSQL database), webhook secrets never reach the logs or an
answer other than the one that created them (through deliveries that fail every way),
and an expired user token is refused on HTTP (401) and closes its WebSocket (4002).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import clarion_env, free_port, run_cli, start_server
from tests.e2e.test_realtime import SECRET
from tests.faults.nodes_support import (
    Reply,
    WebhookReceiver,
    fresh_pg_database,
    run_sync,
    write_result,
)


def user_token(user: str, exp: float) -> str:
    """A token as the server mints it (same claims, same key), with a chosen expiry: the
    API refuses TTLs under 60 s, and these tests need one that runs out in seconds."""
    claims = {"sub": user, "typ": "user", "iss": "clarion", "iat": int(time.time()), "exp": exp}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def forms_of_key(key: str) -> list[str]:
    """The raw key, and its random part without the prefix (a dump might hold either)."""
    random_part = key.split("_", 1)[1] if "_" in key else key
    return [key, random_part]


def sqlite_dump(path: Path) -> bytes:
    """Every byte of the database files (free pages included) and a logical dump."""
    raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    with sqlite3.connect(path) as conn:
        text = "\n".join(conn.iterdump())
    return raw + text.encode()


async def _pg_rows(dsn: str) -> bytes:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        )
        out = []
        for t in tables:
            for row in await conn.fetch(f'SELECT * FROM "{t["tablename"]}"'):
                out.append(repr(tuple(row)))
        return "\n".join(out).encode()
    finally:
        await conn.close()


def pg_dump(url: str) -> tuple[bytes, str]:
    """pg_dump's data of the database if the client matches the server, else every row
    of every table read over a connection (what pg_dump would have written)."""
    dsn = url.replace("+asyncpg", "")
    proc = subprocess.run(
        ["pg_dump", "--data-only", "--no-owner", dsn], capture_output=True, timeout=120
    )
    if proc.returncode == 0 and b"COPY" in proc.stdout:
        return proc.stdout, "pg_dump"
    return run_sync(lambda: _pg_rows(dsn)), "select"


@pytest.mark.faults
@pytest.mark.faults_quick
@pytest.mark.timeout(300)
def test_api_keys_only_hashed_in_sqlite_dump(tmp_path: Path) -> None:
    env = clarion_env(tmp_path, CLARION_SECRET_KEY=SECRET)
    keys = [
        run_cli(env, "api-key", "create", "--name", f"k{i}", cwd=tmp_path).strip() for i in range(3)
    ]
    server = start_server(tmp_path, env, key=keys[0])
    try:
        for key in keys:  # used, so any cache or log of it had its chance
            r = httpx.get(
                f"{server.url}/api/v1/notifications",
                params={"user_id": "ana"},
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            )
            assert r.status_code == 200, r.text
    finally:
        server.stop()
    dump = sqlite_dump(tmp_path / "clarion.db")
    log = server.log.read_bytes()
    found = [f for k in keys for f in forms_of_key(k) if f.encode() in dump + log]
    hashed = [hashlib.sha256(k.encode()).hexdigest() in dump.decode("latin-1") for k in keys]
    write_result(
        "secrets_api_keys_sqlite",
        {"keys": len(keys), "dump_bytes": len(dump), "raw_found": found, "hash_found": hashed},
    )
    assert all(hashed), "the dump does not hold the keys' hashes: wrong file searched?"
    assert not found, f"raw API keys in the database file or the log: {found}"


@pytest.mark.faults
@pytest.mark.timeout(300)
def test_api_keys_only_hashed_in_postgres_dump(tmp_path: Path) -> None:
    with fresh_pg_database("secrets") as url:
        env = clarion_env(tmp_path, CLARION_DATABASE_URL=url, CLARION_SECRET_KEY=SECRET)
        keys = [
            run_cli(env, "api-key", "create", "--name", f"k{i}", cwd=tmp_path).strip()
            for i in range(3)
        ]
        dump, how = pg_dump(url)
    found = [f for k in keys for f in forms_of_key(k) if f.encode() in dump]
    hashed = [hashlib.sha256(k.encode()).hexdigest().encode() in dump for k in keys]
    write_result(
        "secrets_api_keys_postgres",
        {"keys": len(keys), "dump": how, "dump_bytes": len(dump), "raw_found": found},
    )
    assert all(hashed), "the dump does not hold the keys' hashes: wrong database dumped?"
    assert not found, f"raw API keys in the PostgreSQL dump: {found}"


@pytest.mark.faults
@pytest.mark.faults_quick
@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "level",
    [
        "info",
        "debug",
    ],
)
def test_webhook_secrets_never_in_logs_or_error_bodies(tmp_path: Path, level: str) -> None:
    closed = free_port()  # nothing listens there: connection refused
    with WebhookReceiver() as receiver:
        receiver.script("/fail", Reply(500, body="receiver exploded"))
        receiver.script("/moved", Reply(302, {"Location": f"{receiver.url}/elsewhere"}))
        receiver.script("/denied", Reply(401, body="bad signature"))
        env = clarion_env(
            tmp_path,
            CLARION_SECRET_KEY=SECRET,
            CLARION_WEBHOOK_ALLOW_PRIVATE="true",
            CLARION_RETRY_BASE_DELAY_SECONDS="0.2",
            CLARION_RETRY_MAX_DELAY_SECONDS="0.5",
            CLARION_MAX_ATTEMPTS="3",
            CLARION_WORKER_POLL_SECONDS="0.2",
            CLARION_LOG_LEVEL=level,  # debug: the most a deployment would ever log
        )
        server = start_server(tmp_path, env)
        api = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {server.key}"}, timeout=30
        )
        bodies: list[bytes] = []
        try:
            targets = {
                "fail": f"{receiver.url}/fail",
                "moved": f"{receiver.url}/moved",
                "denied": f"{receiver.url}/denied",
                "refused": f"http://127.0.0.1:{closed}/hook",
            }
            secrets: list[str] = []
            ids: list[str] = []
            for type_, url in targets.items():
                r = api.post("/api/v1/webhooks", json={"url": url, "types": [type_]})
                assert r.status_code == 201, r.text
                secrets.append(r.json()["secret"])
                ids.append(r.json()["id"])
            nids = []
            for type_ in targets:
                r = api.post(
                    "/api/v1/notifications",
                    json={"user_id": "ana", "type": type_, "title": "t", "channels": ["webhook"]},
                )
                assert r.status_code == 202, r.text
                nids.append(r.json()["ids"][0])
            # every delivery fails for good (dead), through retries for the transient ones
            deadline = time.monotonic() + 90
            finals: list[dict[str, Any]] = []
            while time.monotonic() < deadline:
                finals = [
                    api.get(f"/api/v1/notifications/{nid}/deliveries").json()["deliveries"][0]
                    for nid in nids
                ]
                if all(d["status"] == "dead" for d in finals):
                    break
                time.sleep(0.3)
            assert all(d["status"] == "dead" for d in finals), finals

            # everything the API answers about these endpoints and deliveries, and errors
            bodies += [api.get("/api/v1/webhooks").content]
            bodies += [api.get(f"/api/v1/webhooks/{i}").content for i in ids]
            bodies += [api.get(f"/api/v1/notifications/{n}/deliveries").content for n in nids]
            errors = [
                api.post("/api/v1/webhooks", json={"url": "ftp://x.example/", "secret": "x"}),
                api.post("/api/v1/webhooks", content=b"{not json"),
                api.post(f"/api/v1/notifications/deliveries/{finals[0]['id']}/retry"),
                api.get("/api/v1/webhooks/00000000-0000-0000-0000-000000000000"),
                httpx.get(f"{server.url}/api/v1/webhooks", timeout=30),  # no key
            ]
            api.post(f"/api/v1/notifications/deliveries/{finals[0]['id']}/retry")
            assert all(r.status_code >= 400 for r in errors[:2] + errors[3:]), [
                (r.status_code, r.text) for r in errors
            ]
            bodies += [r.content for r in errors]
            bodies.append(httpx.get(f"{server.url}/metrics", timeout=30).content)
            time.sleep(1.0)  # the retried delivery's failure is logged too
        finally:
            api.close()
            server.stop()
        log = server.log.read_bytes()
        forms = {s: [s, s.removeprefix("whsec_")] for s in secrets}
        for s in secrets:  # the HMAC key itself, as hex, in case something prints bytes
            forms[s].append(base64.b64decode(s.removeprefix("whsec_")).hex())
        in_log = [f for fs in forms.values() for f in fs if f.encode() in log]
        in_bodies = [f for fs in forms.values() for f in fs for b in bodies if f.encode() in b]
        copies = len(receiver.copies)
    write_result(
        f"secrets_webhooks_{level}",
        {
            "log_level": level,
            "endpoints": len(secrets),
            "log_bytes": len(log),
            "log_lines": log.count(b"\n"),
            "answers_searched": len(bodies),
            "receiver_copies": copies,
            "found_in_log": in_log,
            "found_in_answers": in_bodies,
            "final": [(d["status"], d["reason"], d["attempt_count"]) for d in finals],
        },
    )
    assert b"webhook" in log, "the log holds no delivery lines: was it captured?"
    assert not in_log, f"webhook secrets in the server log: {in_log}"
    assert not in_bodies, f"webhook secrets in API answers: {in_bodies}"


@pytest.mark.faults
@pytest.mark.faults_quick
@pytest.mark.timeout(300)
async def test_expired_user_tokens_refused_on_http_and_websocket(tmp_path: Path) -> None:
    env = clarion_env(tmp_path, CLARION_SECRET_KEY=SECRET)
    server = await asyncio.to_thread(start_server, tmp_path, env)
    figures: dict[str, Any] = {}
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            minted = await http.post(
                "/api/v1/users/ana/token",
                json={"ttl_seconds": 60},
                headers={"Authorization": f"Bearer {server.key}"},
            )
            assert minted.status_code == 200, minted.text
            good = minted.json()["token"]
            expired = user_token("ana", time.time() - 5)
            ok = await http.get(
                "/api/v1/notifications", headers={"Authorization": f"Bearer {good}"}
            )
            refused = await http.get(
                "/api/v1/notifications", headers={"Authorization": f"Bearer {expired}"}
            )
            figures["http"] = {"fresh": ok.status_code, "expired": refused.status_code}
            assert ok.status_code == 200, ok.text
            assert refused.status_code == 401, refused.text
            error = refused.json()["error"]
            assert error["code"] == "token_expired" and error["message"], error

        ws_url = server.url.replace("http://", "ws://") + "/api/v1/ws"
        # expired at connect: closed with 4002 before anything is sent
        async with websockets.connect(ws_url) as ws:
            await ws.send(orjson.dumps({"type": "auth", "token": expired}).decode())
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
        figures["ws_expired_at_connect"] = closed.value.rcvd.code if closed.value.rcvd else None
        assert figures["ws_expired_at_connect"] == 4002

        # expires while connected: live first, then closed with 4002 at expiry
        lifetime = 3.0
        short = user_token("ana", time.time() + lifetime)
        started = time.monotonic()
        frames = []
        async with websockets.connect(ws_url) as ws:
            await ws.send(orjson.dumps({"type": "auth", "token": short}).decode())
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    frames.append(orjson.loads(await asyncio.wait_for(ws.recv(), 30))["type"])
        after = time.monotonic() - started
        code = closed.value.rcvd.code if closed.value.rcvd else None
        figures["ws_expired_while_connected"] = {
            "code": code,
            "closed_after_s": round(after, 2),
            "frames_before": frames,
        }
        assert "unread_count" in frames, frames  # it was live before
        assert code == 4002, figures
        assert lifetime - 1.5 <= after <= lifetime + 10, figures
    finally:
        await asyncio.to_thread(server.stop)
        write_result("secrets_expired_tokens", figures)
