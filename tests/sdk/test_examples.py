"""Every program in docs/examples/ runs against a real ``clarion serve`` with
CLARION_URL and CLARION_API_KEY set, exits 0 and prints what it is about."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"

#: What each example must print (a line of its output starting with each).
PRINTS = {
    "send.py": ["sent [", "accepted 3", "unread ", "not found: not_found"],
    "rich_and_scheduled.py": ["scheduled [", "now due at ", "pending: Reminder", "cancelled 1"],
    "batching.py": ["held in [", "folded into: "],
    "preferences.py": ["quiet hours: ", "refused: ", "ana sees "],
    "live_listening.py": ["unread: ", "new: Bo followed you"],
    "experiments.py": ["draft - planned per arm: ", "verdict: ", "control ", "stopped"],
}


def test_every_example_is_listed() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(PRINTS)


@pytest.mark.parametrize("name", sorted(PRINTS))
def test_example_runs(name: str, server: Server) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLARION_")}
    env.update(CLARION_URL=server.url, CLARION_API_KEY=server.key)
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=server.log.parent,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for start in PRINTS[name]:
        assert any(line.startswith(start) for line in lines), (start, done.stdout)
