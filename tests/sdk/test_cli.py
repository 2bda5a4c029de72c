"""The command line as a client of the running service (send, list, tail, status through
the Python client, --json for scripts), and --offline on the database directly."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from clarion_client import AsyncClient
from tests.e2e.conftest import CLARION, Server, free_port

pytestmark = pytest.mark.e2e


def cli(server: Server, *args: str, online: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(server.env)
    if online:
        env.update(CLARION_URL=server.url, CLARION_API_KEY=server.key)
    return subprocess.run(
        [*CLARION, *args],
        env=env,
        cwd=server.log.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_a_cli_send_reaches_an_open_live_connection(server: Server) -> None:
    """On the embedded default (SQLite, no Redis) only the server can push: the CLI
    sends through it."""
    async with AsyncClient(server.url, server.key) as clarion:
        token = (await clarion.users.create_token("cli-ana")).token
        async with clarion.live(token) as stream:
            events = stream.__aiter__()
            heard = asyncio.Event()

            async def listen() -> str:
                async for event in events:
                    if event.type == "unread_count":
                        heard.set()
                    if event.type == "notification.created" and event.notification:
                        return event.notification.title
                raise AssertionError("the stream ended")

            listener = asyncio.create_task(listen())
            await asyncio.wait_for(heard.wait(), 10)
            done = await asyncio.to_thread(
                cli, server, "send", "--user", "cli-ana", "--title", "From the shell", "--json"
            )
            assert done.returncode == 0, done.stderr
            sent = json.loads(done.stdout)
            assert sent["accepted"] == 1 and len(sent["ids"]) == 1
            assert await asyncio.wait_for(listener, 10) == "From the shell"
            await events.aclose()  # type: ignore[attr-defined]


def test_send_list_and_status(server: Server) -> None:
    done = cli(
        server,
        "send",
        "--user",
        "cli-bo",
        "--user",
        "cli-cy",
        "--title",
        "Hi",
        "--type",
        "news",
        "--data",
        '{"n": 1}',
    )
    assert done.returncode == 0 and done.stdout.startswith("accepted 2: ids ["), done
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    later = cli(server, "send", "--user", "cli-bo", "--title", "Later", "--at", tomorrow, "--json")
    assert json.loads(later.stdout)["scheduled"], later

    listed = json.loads(cli(server, "list", "--user", "cli-bo", "--json").stdout)
    assert [(n["title"], n["type"], n["data"]) for n in listed] == [("Hi", "news", {"n": 1})]
    table = cli(server, "list", "--user", "cli-bo").stdout
    assert "news  Hi" in table

    status = json.loads(cli(server, "status", "--json").stdout)
    assert status["status"] == "ok" and "outbox" in status
    assert cli(server, "status").stdout.startswith("status: ok")


def test_offline_writes_and_reads_the_database(server: Server) -> None:
    done = cli(
        server,
        "send",
        "--offline",
        "--user",
        "cli-dee",
        "--title",
        "Direct",
        "--json",
        online=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["accepted"] == 1
    offline = json.loads(
        cli(server, "list", "--offline", "--user", "cli-dee", "--json", online=False).stdout
    )
    online = json.loads(cli(server, "list", "--user", "cli-dee", "--json").stdout)
    assert [n["title"] for n in offline] == [n["title"] for n in online] == ["Direct"]
    assert json.loads(cli(server, "status", "--offline", "--json", online=False).stdout)


def test_tail_prints_what_arrives(server: Server) -> None:
    cli(server, "send", "--user", "cli-eve", "--title", "Before")
    env = {**server.env, "CLARION_URL": server.url, "CLARION_API_KEY": server.key}
    proc = subprocess.Popen(
        [*CLARION, "tail", "--user", "cli-eve", "--cursor", "0", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    assert proc.stdout is not None
    stdout = proc.stdout
    reader = threading.Thread(target=lambda: lines.extend(iter(stdout.readline, "")))
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while not lines and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert lines and json.loads(lines[0])["notification"]["title"] == "Before", lines
        cli(server, "send", "--user", "cli-eve", "--title", "After")
        deadline = time.monotonic() + 30
        while len(lines) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert json.loads(lines[1])["notification"]["title"] == "After", lines
    finally:
        proc.terminate()
        proc.wait(10)
        reader.join(5)


def test_refusals_and_an_unreachable_server(server: Server) -> None:
    env_key = cli(server, "status", "--api-key", "clk_not_a_key")
    assert env_key.returncode == 2 and "error: unauthenticated" in env_key.stderr
    invalid = cli(server, "send", "--user", "x", "--title", "t", "--type", "no spaces")
    assert invalid.returncode == 2 and "validation_failed" in invalid.stderr
    gone = cli(server, "status", "--url", f"http://127.0.0.1:{free_port()}")
    assert gone.returncode == 1 and "cannot reach" in gone.stderr
