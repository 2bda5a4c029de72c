"""``clarion serve`` SIGKILLed while clients send, on SQLite and PostgreSQL.

Clients send one-recipient notifications, each with an identity of its own carried as
``Idempotency-Key`` and in ``data.client_id``, and retry through the kill with the same key
until they get a 202. The server is SIGKILLed (by PID) mid-load and started again on the
same port: once on SQLite (200 sends, part of ``make test``), twice on PostgreSQL (1,000
sends). A restart is slow on a busy machine (imports), which is why the sizes are small:
the kills, not the volume, are the point. Afterwards the stored rows are read back and
classified: every acknowledged send must be stored exactly once, with the id its 202
named; nothing is stored twice; nothing stored that no client sent.

A retry of a send whose request died with the server must be answered (replayed, or run
again) at once, never with 409 ``idempotency_in_progress``: no request with that key is
running any more (the key is claimed inside the send's own transaction, so a request that
died left no claim behind).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import clarion_env
from tests.faults.harness import (
    ClarionProcess,
    Load,
    ProcessSet,
    StatusLog,
    assert_exactly_once,
    classify,
    cli,
    expect_prompt_retries,
    stored_copies,
    write_result,
)

SECRET = "faults-kill-serve-" + "x" * 32


def run(
    name: str,
    database_url: str,
    tmp_path: Path,
    processes: ProcessSet,
    *,
    total: int,
    kills: int,
    clients: int,
    budget: float,
) -> None:
    started = time.monotonic()
    env = clarion_env(
        tmp_path,
        CLARION_DATABASE_URL=database_url,
        CLARION_SECRET_KEY=SECRET,
        CLARION_EMBEDDED_WORKER="false",
    )
    cli(env, "migrate", cwd=tmp_path)
    key = cli(env, "api-key", "create", "--name", "faults", cwd=tmp_path).strip()
    serve = processes.add(ClarionProcess("serve", tmp_path, env))
    serve.start()

    run_id = uuid.uuid4().hex[:8]
    items: list[tuple[str, dict[str, Any]]] = []
    for i in range(total):
        identity = f"ks-{run_id}-{i:05d}"
        body = {
            "user_id": f"u{i % 50}",
            "type": "fault",
            "title": f"send {i}",
            "data": {"client_id": identity},
        }
        items.append((identity, body))

    statuses = StatusLog()
    restarts: list[dict[str, float]] = []
    # While the server is down or just back, no send gives up: budget counts from ready.
    load = Load(lambda: serve.url, key, statuses, clients=clients, budget=budget, seed=11)
    load.start(items)
    try:
        for k in range(1, kills + 1):
            load.wait_acknowledged(total * k // (kills + 1), timeout=300)
            load.hold()
            killed_at = time.monotonic()
            serve.kill()
            time.sleep(0.3)  # clients meet a closed port for a moment
            serve.start(wait=False)
            serve.wait_ready(180)
            ready_at = time.monotonic()
            load.release(ready_at)
            restarts.append(
                {"down_s": round(ready_at - killed_at, 2), "at": killed_at, "ready": ready_at}
            )
        load.join(timeout=budget + 180)
        # From each kill to the first 202 of the restarted server (a 202 read just after
        # the kill may have been answered before it): how long clients waited.
        acked_times = sorted(o.acked_at for o in load.outcomes.values() if o.acked_at)
        for r in restarts:
            after = [t for t in acked_times if t > r["ready"]]
            r["first_202_s"] = round(after[0] - r["at"], 2) if after else -1.0
            del r["at"], r["ready"]
    finally:
        load.stop()
        serve.stop()

    sent = load.sent()
    copies = stored_copies(database_url, "fault")
    tally = classify(sent, copies)
    stored_by_identity = {c.identity: int(c.copy_id) for c in copies}
    wrong_ids = [
        o.identity
        for o in load.outcomes.values()
        if o.acknowledged and stored_by_identity.get(o.identity) not in o.ids
    ]
    unacknowledged = [i for i, a in sent.items() if not a]
    figures = {
        "scenario": f"serve SIGKILLed {kills}x during {total} sends, {clients} clients",
        "backend": "postgresql" if database_url.startswith("postgresql") else "sqlite",
        **tally.as_dict(),
        "stored": len(copies),
        "statuses": statuses.snapshot(),
        "status_samples": statuses.samples,
        "attempts": sum(o.attempts for o in load.outcomes.values()),
        "restarts": restarts,
        "recovery_s": max((r["first_202_s"] for r in restarts), default=0.0),
        "unacknowledged": len(unacknowledged),
        "duration_s": round(time.monotonic() - started, 1),
    }
    write_result(name, figures)
    print(f"\n{name}: {figures}")

    # The guarantees: nothing acknowledged is lost or stored twice, nothing is invented.
    assert len(sent) == total
    assert_exactly_once(tally, statuses)
    assert not wrong_ids, wrong_ids[:5]
    assert len(restarts) == kills
    # Retries of the sends the kills interrupted are answered, not told to wait.
    expect_prompt_retries(statuses, len(unacknowledged), "the kill")


@pytest.mark.faults_quick
@pytest.mark.timeout(600)
def test_kill_serve_sqlite(tmp_path: Path, processes: ProcessSet) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'clarion.db'}"
    run(
        "kill_serve_sqlite",
        url,
        tmp_path,
        processes,
        total=200,
        kills=1,
        clients=6,
        budget=8,
    )


@pytest.mark.postgres
@pytest.mark.timeout(600)
def test_kill_serve_postgres(
    tmp_path: Path, processes: ProcessSet, shared_pg_database: str
) -> None:
    run(
        "kill_serve_postgres",
        shared_pg_database,
        tmp_path,
        processes,
        total=1000,
        kills=2,
        clients=8,
        budget=20,
    )
