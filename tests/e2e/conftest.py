"""Real ``clarion serve`` processes on free ports, driven over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

CLARION = [sys.executable, "-m", "clarion.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    key: str
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def clarion_env(workdir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLARION_")}
    env.update(
        CLARION_DATABASE_URL=f"sqlite+aiosqlite:///{workdir / 'clarion.db'}",
        CLARION_LOG_LEVEL="warning",
    )
    env.update(extra)
    return env


def run_cli(env: dict[str, str], *args: str, cwd: Path) -> str:
    out = subprocess.run(
        [*CLARION, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout


def start_server(workdir: Path, env: dict[str, str], key: str | None = None) -> Server:
    """Start ``clarion serve`` and wait until /readyz answers."""
    if key is None:
        key = run_cli(env, "api-key", "create", "--name", "e2e", cwd=workdir).strip()
    port = free_port()
    log = workdir / f"serve-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*CLARION, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90  # a loaded machine takes 10 s+ to import and migrate
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"clarion serve exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return Server(url, key, env, proc, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"clarion serve did not become ready: {log.read_text()[-2000:]}")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Server]:
    server = start_server(tmp_path, clarion_env(tmp_path))
    try:
        yield server
    finally:
        server.stop()
