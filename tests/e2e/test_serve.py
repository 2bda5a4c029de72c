"""The README's walkthrough against a real ``clarion serve`` with a key from the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.e2e.conftest import Server, clarion_env, run_cli, start_server


def test_walkthrough_over_http(served: Server) -> None:
    h = {"Authorization": f"Bearer {served.key}"}
    with httpx.Client(base_url=served.url, headers=h, timeout=10) as c:
        r = c.post(
            "/api/v1/notifications",
            json={"user_id": "ana", "type": "follow", "title": "Bo followed you"},
        )
        assert r.status_code == 202, r.text
        (nid,) = r.json()["ids"]
        assert [i["id"] for i in c.get("/api/v1/notifications?user_id=ana").json()["items"]] == [
            nid
        ]
        assert c.get("/api/v1/notifications/unread-count?user_id=ana").json()["unread"] == 1
        assert c.post(f"/api/v1/notifications/{nid}/read").status_code == 200
        assert c.get("/api/v1/notifications/unread-count?user_id=ana").json()["unread"] == 0
        c.post("/api/v1/notifications", json={"user_ids": ["ana", "bo"], "type": "x", "title": "y"})
        assert c.post("/api/v1/notifications/read-all?user_id=ana").json()["unread"] == 0
        assert "clarion_http_requests_total" in c.get("/metrics").text
    r = httpx.get(f"{served.url}/api/v1/notifications?user_id=ana")
    assert r.status_code == 401


def test_first_start_creates_a_key_and_a_secret(tmp_path: Path) -> None:
    env = clarion_env(tmp_path)
    server = start_server(tmp_path, env, key="unknown")
    try:
        log = server.log.read_text()
        match = re.search(r"(clk_[A-Za-z0-9_-]{20,})", log)
        assert match, log
        key = match.group(1)
        r = httpx.get(
            f"{server.url}/api/v1/notifications/unread-count?user_id=a",
            headers={"Authorization": f"Bearer {key}"},
        )
        assert r.status_code == 200
        assert "CLARION_SECRET_KEY is not set" in log
        assert (tmp_path / ".clarion-secret").exists()
        assert (tmp_path / ".clarion-secret").stat().st_mode & 0o077 == 0
    finally:
        server.stop()
    listing = run_cli(env, "api-key", "list", cwd=tmp_path)
    assert "default" in listing and "active" in listing
    key_id = listing.split()[0]
    run_cli(env, "api-key", "revoke", key_id, cwd=tmp_path)
    assert "revoked" in run_cli(env, "api-key", "list", cwd=tmp_path)


def test_cli_send_and_migrate(tmp_path: Path) -> None:
    env = clarion_env(tmp_path)
    run_cli(env, "migrate", cwd=tmp_path)
    out = run_cli(
        env,
        "send",
        "--offline",
        "--json",
        "--user",
        "ana",
        "--user",
        "bo",
        "--title",
        "Hello",
        "--message",
        "from the shell",
        cwd=tmp_path,
    )
    assert '"accepted": 2' in out
