"""``clarion serve --workers N``: several processes on one port, live updates between
them over Redis, a clean stop, and a clear refusal where pushes could not cross."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import websockets

from tests.e2e.conftest import CLARION, clarion_env, run_cli, start_server
from tests.e2e.test_realtime import SECRET, recv, recv_until, send, token_for, ws_url


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def _wait_children(pid: int, n: int) -> list[int]:
    deadline = time.monotonic() + 20
    while len(_children(pid)) < n and time.monotonic() < deadline:
        time.sleep(0.1)
    return _children(pid)


def _still_running(pids: list[int], within: float = 10.0) -> dict[int, str]:
    """Those of ``pids`` still running after ``within`` seconds (a reaped or zombie
    process has no command line). multiprocessing's resource tracker, one of the
    children, exits on its own once the supervisor is gone: give it a moment."""
    deadline = time.monotonic() + within
    while True:
        left = {pid: c for pid in pids if (c := _cmdline(pid))}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


async def test_two_processes_share_the_port_and_the_pushes(tmp_path: Path, pg_url: str) -> None:
    env = clarion_env(
        tmp_path,
        CLARION_DATABASE_URL=pg_url,
        CLARION_REDIS_URL="redis://127.0.0.1:6379/0",
        CLARION_REDIS_PREFIX=f"t{uuid.uuid4().hex[:8]}",
        CLARION_SECRET_KEY=SECRET,
        CLARION_WORKERS="2",
    )
    key = run_cli(env, "api-key", "create", "--name", "workers", cwd=tmp_path).strip()
    server = start_server(tmp_path, env, key=key)
    try:
        workers = _wait_children(server.proc.pid, 2)
        assert len(workers) >= 2, workers
        users = [f"w{i}-{uuid.uuid4().hex[:6]}" for i in range(6)]
        sockets = [await websockets.connect(ws_url(server, token_for(u))) for u in users]
        try:
            for ws in sockets:
                await recv(ws)  # the first unread_count
            await asyncio.sleep(0.5)  # every process learns of every session
            sent = {u: send(server, user_id=u, title=f"for {u}")[0] for u in users}
            for u, ws in zip(users, sockets, strict=True):
                got, _ = await recv_until(ws, "notification.created", timeout=10)
                assert got["notification"]["id"] == sent[u]
                assert got["notification"]["user_id"] == u
        finally:
            for ws in sockets:
                await ws.close()
    finally:
        server.stop()
    assert server.proc.returncode is not None
    assert not _still_running(workers), "processes left behind"


def test_more_than_one_process_needs_a_shared_broker(tmp_path: Path) -> None:
    env = clarion_env(tmp_path)  # SQLite, no Redis
    out = subprocess.run(
        [*CLARION, "serve", "--workers", "2", "--port", "1"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "CLARION_REDIS_URL" in out.stderr


@pytest.mark.parametrize("value", ["0", "-1"])
def test_workers_must_be_positive(tmp_path: Path, value: str) -> None:
    out = subprocess.run(
        [*CLARION, "serve", "--workers", value],
        env=clarion_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "workers" in out.stderr.lower()
