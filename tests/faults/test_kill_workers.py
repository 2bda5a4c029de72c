"""``clarion worker`` processes SIGKILLed while they deliver webhooks to a real local
receiver and email to a local SMTP server (PostgreSQL outbox; the database is never
touched, so a fresh database on the shared server does).

Each send carries a client-side identity (its title and ``data.client_id``); a delivery's
identity is the channel, the send and the recipient. The receivers record every copy with
the id it carries for deduplication (``webhook-id``, ``Message-ID``). Three workers with a
3 s lease drain the outbox; one is SIGKILLed by PID at a fifth and at four fifths of the
way, all of them at once half-way, and each is replaced. Afterwards: nothing lost, every
duplicate carries the same delivery id (at least once, never two distinct deliveries of
one send), nothing unexpected, no delivery left leased, and SIGTERM drains cleanly. (The
quick variant: 250 deliveries, two workers, one SIGKILLed.)
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, text

from clarion.config import Settings
from clarion.domain.send_command import SendCommand
from clarion.domain.types import ChannelName
from clarion.services.clock import utcnow
from clarion.services.container import Services
from clarion.store.db import Database
from clarion.store.schema import users
from tests.e2e.conftest import clarion_env
from tests.faults.harness import (
    ClarionProcess,
    Copy,
    ProcessSet,
    SmtpReceiver,
    WebhookReceiver,
    classify,
    cli,
    write_result,
)

SECRET = "faults-kill-workers-" + "x" * 32
LEASE = 3


def webhook_identity(payload: Any, _headers: Mapping[str, str]) -> str:
    n = payload["notification"]
    return f"webhook:{n['data'].get('client_id')}/{n['user_id']}"


def email_identity(msg: EmailMessage) -> str:
    user = parseaddr(str(msg["To"]))[1].split("@")[0]
    return f"email:{msg['Subject']}/{user}"


async def _seed(url: str, hook_url: str, sends: list[tuple[str, list[str], bool]]) -> None:
    """Register the endpoint, give e-mail users an address, send; ``sends`` is
    ``(client id, recipients, with email)``."""
    settings = Settings(
        database_url=url,
        secret_key=SECRET,
        embedded_worker=False,
        webhook_allow_private=True,
        _env_file=None,  # type: ignore[call-arg]
    )
    services = Services(settings)
    try:
        if hook_url:
            await services.webhooks.create(hook_url)
        emailed = [u for _, rcpts, email in sends if email for u in rcpts]
        if emailed:
            now = utcnow()
            async with services.db.begin() as conn:
                await conn.execute(
                    insert(users),
                    [
                        {
                            "user_id": u,
                            "email": f"{u}@faults.test",
                            "data": {},
                            "created_at": now,
                            "updated_at": now,
                        }
                        for u in emailed
                    ],
                )
        for client_id, rcpts, email in sends:
            channels = (ChannelName.WEBHOOK, ChannelName.EMAIL) if email else (ChannelName.WEBHOOK,)
            await services.sending.send(
                SendCommand(
                    user_ids=tuple(rcpts),
                    type="fault",
                    title=client_id,
                    channels=channels,
                    data={"client_id": client_id},
                )
            )
    finally:
        await services.close()


async def _statuses(url: str) -> dict[str, int]:
    db = Database(url)
    try:
        async with db.connect() as conn:
            rows = await conn.execute(
                text("SELECT status, count(*) FROM deliveries GROUP BY status")
            )
            return {r[0]: int(r[1]) for r in rows}
    finally:
        await db.dispose()


def run(
    name: str,
    database_url: str,
    tmp_path: Path,
    processes: ProcessSet,
    *,
    webhooks: int,
    emails: int,
    kills_at: tuple[tuple[float, int], ...],
    workers_n: int = 3,
) -> None:
    """``kills_at``: (fraction of copies received, workers SIGKILLed then) pairs."""
    started = time.monotonic()
    hooks = WebhookReceiver(webhook_identity, delay=0.01).start()
    smtp = SmtpReceiver(email_identity).start()
    env = clarion_env(
        tmp_path,
        CLARION_DATABASE_URL=database_url,
        CLARION_SECRET_KEY=SECRET,
        CLARION_WEBHOOK_ALLOW_PRIVATE="true",
        CLARION_SMTP_HOST="127.0.0.1",
        CLARION_SMTP_PORT=str(smtp.port),
        CLARION_SMTP_FROM="Clarion <notify@faults.test>",
        CLARION_WORKER_LEASE_SECONDS=str(LEASE),
        CLARION_WORKER_POLL_SECONDS="0.2",
        CLARION_WORKER_CONCURRENCY="32",
        CLARION_WORKER_BATCH_SIZE="100",
        CLARION_RETRY_BASE_DELAY_SECONDS="0.5",
        CLARION_RETRY_MAX_DELAY_SECONDS="2",
    )
    cli(env, "migrate", cwd=tmp_path)

    run_id = uuid.uuid4().hex[:6]
    recipients = [f"r{run_id}-{i}" for i in range(webhooks)]
    per_send = max(20, webhooks // 10)
    # (client id, recipients, with email): the first ``emails`` recipients also get email.
    sends: list[tuple[str, list[str], bool]] = []
    for group, with_email in ((recipients[:emails], True), (recipients[emails:], False)):
        for s in range(0, len(group), per_send):
            sends.append((f"kw-{run_id}-{len(sends):03d}", group[s : s + per_send], with_email))
    # What the client expects to arrive: every (channel, send, recipient).
    expected: dict[str, bool] = {}
    for client_id, rcpts, with_email in sends:
        for u in rcpts:
            expected[f"webhook:{client_id}/{u}"] = False
            if with_email:
                expected[f"email:{client_id}/{u}"] = False
    # Sends go in while the workers run: the first third before they start.
    first = max(1, len(sends) // 3)
    asyncio.run(_seed(database_url, hooks.url, sends[:first]))
    for client_id, rcpts, with_email in sends[:first]:
        for u in rcpts:
            expected[f"webhook:{client_id}/{u}"] = True
            if with_email:
                expected[f"email:{client_id}/{u}"] = True
    total = len(expected)

    def received() -> int:
        return hooks.count + smtp.count

    workers: list[ClarionProcess] = []

    def spawn() -> ClarionProcess:
        w = processes.add(ClarionProcess("worker", tmp_path, env))
        workers.append(w.start(wait=False))
        return w

    kills: list[dict[str, Any]] = []

    def kill(victims: list[ClarionProcess], at: int) -> None:
        killed_at = time.monotonic()
        for v in victims:
            v.kill()  # SIGKILL by PID
        for _ in victims:
            spawn()
        kills.append({"workers": len(victims), "at_received": at, "t": killed_at})

    seed_error: list[BaseException] = []

    def seed_rest() -> None:
        try:
            asyncio.run(_seed(database_url, "", sends[first:]))
        except BaseException as exc:
            seed_error.append(exc)

    try:
        workers_started = time.monotonic()
        for _ in range(workers_n):
            spawn()
        seeder = threading.Thread(target=seed_rest, daemon=True)
        seeder.start()
        for fraction, how_many in kills_at:
            deadline = time.monotonic() + 300
            while received() < total * fraction and time.monotonic() < deadline:
                time.sleep(0.02)
            live = [w for w in workers if w.running()]
            kill(live[:how_many], received())
        seeder.join(120)
        assert not seeder.is_alive() and not seed_error, seed_error
        for client_id, rcpts, with_email in sends[first:]:
            for u in rcpts:
                expected[f"webhook:{client_id}/{u}"] = True
                if with_email:
                    expected[f"email:{client_id}/{u}"] = True

        deadline = time.monotonic() + 300
        rows: dict[str, int] = {}
        while time.monotonic() < deadline:
            rows = asyncio.run(_statuses(database_url))
            if set(rows) == {"delivered"} and rows["delivered"] == total:
                break
            time.sleep(0.5)
        drained_at = time.monotonic()
        live = [w for w in workers if w.running()]
        for w in live:
            w.wait_ready(120)  # a worker still importing would die of SIGTERM, not drain
        exit_codes = [w.stop(60) for w in live]
    finally:
        for w in workers:
            w.kill()
        hooks.stop()
        smtp.stop()

    copies: list[Copy] = hooks.copies() + smtp.copies()
    tally = classify(expected, copies)
    by_channel = {
        ch: classify(
            {i: a for i, a in expected.items() if i.startswith(ch + ":")},
            [c for c in copies if c.channel == ch],
        ).as_dict()
        for ch in ("webhook", "email")
    }
    times = sorted(c.at for c in copies)
    for k in kills:
        # Copies arriving in the first 0.25 s were already in flight at the receiver.
        after = [t for t in times if t > k["t"] + 0.25]
        k["next_copy_s"] = round(after[0] - k["t"], 2) if after else -1.0
        del k["t"]
    figures = {
        "scenario": (
            f"{webhooks} webhooks + {emails} emails, {workers_n} workers (lease {LEASE} s), "
            + ", then ".join(f"{n} SIGKILLed at {f:.0%}" for f, n in kills_at)
            + ", each replaced"
        ),
        "backend": "postgresql",
        **tally.as_dict(),
        "by_channel": {
            ch: {k: v for k, v in t.items() if k != "examples"} for ch, t in by_channel.items()
        },
        "statuses": {f"deliveries {k}": v for k, v in sorted(rows.items())},
        "kills": kills,
        "recovery_s": max(k["next_copy_s"] for k in kills),
        # Worker start-up (imports) dominates on a busy machine: first copy vs. the rest.
        "first_copy_s": round(times[0] - workers_started, 1) if times else -1.0,
        "deliveries_per_s": round(len(times) / max(0.001, times[-1] - times[0]), 1)
        if len(times) > 1
        else 0.0,
        "drain_s": round(drained_at - started, 1),
        "worker_exit_codes": exit_codes,
        "duration_s": round(time.monotonic() - started, 1),
    }
    write_result(name, figures)
    print(f"\n{name}: {figures}")

    assert len(kills) == len(kills_at)
    assert tally.lost == 0, tally.examples
    assert tally.conflicting == 0, tally.examples  # duplicates share their delivery id
    assert tally.unexpected == 0, tally.examples
    assert tally.delivered == total
    assert rows == {"delivered": total}, rows  # nothing left leased, failed or dead
    assert exit_codes and all(c == 0 for c in exit_codes), exit_codes  # SIGTERM drains


@pytest.mark.faults_quick
@pytest.mark.postgres
@pytest.mark.timeout(600)
def test_kill_workers_quick(tmp_path: Path, processes: ProcessSet, shared_pg_database: str) -> None:
    run(
        "kill_workers_quick",
        shared_pg_database,
        tmp_path,
        processes,
        webhooks=200,
        emails=50,
        kills_at=((0.4, 1),),
        workers_n=2,
    )


@pytest.mark.postgres
@pytest.mark.timeout(900)
def test_kill_workers(tmp_path: Path, processes: ProcessSet, shared_pg_database: str) -> None:
    run(
        "kill_workers",
        shared_pg_database,
        tmp_path,
        processes,
        webhooks=5000,
        emails=500,
        kills_at=((0.2, 1), (0.5, 3), (0.8, 1)),
    )
