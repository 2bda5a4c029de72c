"""API keys are created and revoked from the command line: both are audited, naming the
operating-system user."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import clarion_env, run_cli


def test_key_create_and_revoke_are_audited(tmp_path: Path) -> None:
    env = clarion_env(tmp_path, CLARION_SECRET_KEY="cli-audit-" + "x" * 32)
    key = run_cli(env, "api-key", "create", "--name", "ops", "--scope", "read", cwd=tmp_path)
    run_cli(env, "api-key", "revoke", key.strip()[:12], cwd=tmp_path)
    script = (
        "import asyncio, json\n"
        "from clarion.cli.common import load_settings, with_services\n"
        "async def go(s):\n"
        "    return await s.dashboard.audit_page()\n"
        "print(json.dumps(asyncio.run(with_services(load_settings(), go))))\n"
    )
    out = run_cli_python(env, script, tmp_path)
    revoked, created = json.loads(out)
    assert created["action"] == "api_key.create" and created["via"] == "cli"
    assert created["after"]["name"] == "ops" and created["after"]["scopes"] == ["read"]
    assert "key_hash" not in created["after"] and created["actor"].startswith("cli:")
    assert revoked["action"] == "api_key.revoke"
    assert revoked["before"]["revoked_at"] is None and revoked["after"]["revoked_at"] is not None
    assert revoked["target"] == created["target"]


def run_cli_python(env: dict[str, str], script: str, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=cwd, capture_output=True, text=True, check=True
    )
    return done.stdout
