"""``clarion api-key create --scope ... --rate-limit ...`` and ``api-key list``, and the
keys they make against a real ``clarion serve``."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import httpx

from tests.e2e.conftest import CLARION, clarion_env, run_cli, start_server

KEY = re.compile(r"clk_[A-Za-z0-9_-]{43}")


def test_scoped_and_limited_keys_from_the_cli(tmp_path: Path) -> None:
    env = clarion_env(tmp_path)
    read = run_cli(
        env,
        "api-key",
        "create",
        "--name",
        "dash",
        "--scope",
        "read",
        "--rate-limit",
        "10/second",
        cwd=tmp_path,
    ).strip()
    assert KEY.fullmatch(read), read
    both = run_cli(
        env,
        "api-key",
        "create",
        "--name",
        "backend",
        "--scope",
        "send",
        "--scope",
        "read",
        cwd=tmp_path,
    ).strip()
    five = run_cli(
        env,
        "api-key",
        "create",
        "--name",
        "five",
        "--scope",
        "send",
        "--rate-limit",
        "5/second",
        cwd=tmp_path,
    ).strip()
    admin = run_cli(env, "api-key", "create", "--name", "ops", cwd=tmp_path).strip()
    assert all(KEY.fullmatch(k) for k in (both, five, admin))

    listing = {
        line.split()[-1]: line.split()
        for line in run_cli(env, "api-key", "list", cwd=tmp_path).splitlines()
    }
    assert listing["dash"][3:5] == ["read", "10/second"], listing["dash"]
    assert listing["backend"][3:5] == ["read,send", "default"], listing["backend"]
    assert listing["ops"][3:5] == ["admin", "default"], listing["ops"]

    for bad in (["--scope", "write"], ["--rate-limit", "lots"]):
        out = subprocess.run(
            [*CLARION, "api-key", "create", "--name", "bad", *bad],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 2 and "validation_failed" in out.stderr, out.stderr
        assert out.stdout == ""

    server = start_server(tmp_path, env, key=admin)
    try:
        n = f"{server.url}/api/v1/notifications"
        send = {"user_id": "ana", "type": "follow", "title": "Bo followed you"}
        with httpx.Client(timeout=10) as c:
            r = c.post(n, json=send, headers={"Authorization": f"Bearer {read}"})
            assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
            r = c.post(n, json=send, headers={"Authorization": f"Bearer {both}"})
            assert r.status_code == 202
            r = c.get(f"{n}/unread-count?user_id=ana", headers={"Authorization": f"Bearer {read}"})
            assert r.status_code == 200 and r.headers["ratelimit-limit"] == "10"
            r = c.delete(
                f"{server.url}/api/v1/users/ana", headers={"Authorization": f"Bearer {both}"}
            )
            assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
            # 5/second: the 6th send within a second is refused (windows are whole seconds
            # of the clock without Redis: start just after one, and retry if too slow).
            h = {"Authorization": f"Bearer {five}"}
            for _ in range(3):
                time.sleep(1 - time.time() % 1 + 0.01)
                started = time.monotonic()
                codes = [c.post(n, json=send, headers=h).status_code for _ in range(6)]
                if time.monotonic() - started < 0.9:
                    assert codes == [202] * 5 + [429], codes
                    break
            else:
                raise AssertionError("six sends never fitted in one second")
            r = c.post(n, json=send, headers={"Authorization": f"Bearer {admin}"})
            assert r.status_code == 202  # another key is unaffected
    finally:
        server.stop()
