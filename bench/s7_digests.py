"""S7 digests: pending batch items folded into digests by the real flusher.

Seeds open, due batches straight into the schema with SQL (the send path is S1's
business), then times ``BatchService.flush_due`` — the same call the pipeline loop makes
in ``clarion serve`` and ``clarion worker`` — until nothing is due, and checks that every
item was folded exactly once. Target: 1,000,000 items in <= 30 s.

    .venv/bin/python -m bench.s7_digests [--items 1000000] [--per-batch 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from sqlalchemy import text

from bench.common import Procs, cpu_seconds, drop_db, fresh_db, write_result
from clarion.config import Settings
from clarion.domain.batching import BatchRule, BatchStrategy
from clarion.domain.send_command import SendCommand
from clarion.services.container import Services
from clarion.store.migrate import upgrade_sync

DB = "clarion_bench_s7"
TARGET_SECONDS = 30.0


async def seed(services: Services, items: int, per_batch: int) -> int:
    batches = max(1, items // per_batch)
    command = json.dumps(SendCommand(user_ids=("x",), type="follow", title="followed").to_json())
    rule = json.dumps(
        BatchRule(type="follow", strategy=BatchStrategy.WINDOW, window_seconds=60).to_json()
    )
    async with services.db.begin() as conn:
        await conn.execute(
            text("""
            INSERT INTO batches (id, key, user_id, type, group_key, status, rule, locale,
                                 opened_at, flush_at, item_count)
            SELECT 'b' || g, 'u' || g || ':follow:', 'u' || g, 'follow', '', 'open',
                   CAST(:rule AS json), 'en', now() - interval '1 minute',
                   now() - interval '1 second', :per
            FROM generate_series(1, :batches) g
            """),
            {"rule": rule, "per": per_batch, "batches": batches},
        )
        await conn.execute(
            text("""
            INSERT INTO batch_items (batch_id, title, message, data, actor, command, created_at)
            SELECT 'b' || ((g - 1) / :per + 1), 'Actor ' || g || ' followed you',
                   'started following you', '{}'::json,
                   json_build_object('id', 'a' || g, 'name', 'Actor ' || g),
                   CAST(:command AS json), now() - interval '30 seconds'
            FROM generate_series(1, :items) g
            """),
            {"per": per_batch, "items": batches * per_batch, "command": command},
        )
        await conn.execute(text("ANALYZE batches"))
        await conn.execute(text("ANALYZE batch_items"))
    return batches


async def measure(url: str, items: int, per_batch: int) -> dict[str, Any]:
    await asyncio.to_thread(upgrade_sync, url)
    settings = Settings(
        database_url=url, secret_key="b" * 40, embedded_worker=False, _env_file=None
    )  # type: ignore[call-arg]
    services = Services(settings)
    await services.start()
    try:
        batches = await seed(services, items, per_batch)
        cpu0, wall0 = cpu_seconds_self(), time.perf_counter()
        flushed = 0
        while True:
            n = await services.batches.flush_due(limit=200)
            if n == 0:
                break
            flushed += n
        seconds = time.perf_counter() - wall0
        cpu = cpu_seconds_self() - cpu0
        async with services.db.connect() as conn:
            unfolded = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM batch_items i JOIN batches b ON b.id = i.batch_id"
                        " WHERE b.status <> 'flushed' OR b.notification_id IS NULL"
                    )
                )
            ).scalar_one()
            notifications = (
                await conn.execute(text("SELECT count(*) FROM notifications"))
            ).scalar_one()
    finally:
        await services.close()
    return {
        "items": batches * per_batch,
        "batches": batches,
        "batches_flushed": flushed,
        "digest_notifications": notifications,
        "items_left_unfolded": unfolded,
        "seconds": round(seconds, 2),
        "items_per_second": round(batches * per_batch / seconds, 1),
        "batches_per_second": round(flushed / seconds, 1),
        "process_cpu_seconds": round(cpu, 2),
        "target_seconds_for_1m": TARGET_SECONDS,
        "projected_seconds_for_1m": round(1_000_000 / (batches * per_batch / seconds), 1),
    }


def run(procs: Procs, quick: bool, profile: bool) -> dict[str, Any]:
    """The suite's entry (bench/run.py): 100,000 items in quick mode, 1,000,000 in full."""
    try:
        url = fresh_db(DB).replace("postgresql://", "postgresql+asyncpg://")
        return asyncio.run(measure(url, 100_000 if quick else 1_000_000, 100))
    finally:
        drop_db(DB)


def cpu_seconds_self() -> float:
    import os

    return cpu_seconds(os.getpid())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--per-batch", type=int, default=100)
    args = parser.parse_args()
    try:
        url = fresh_db(DB).replace("postgresql://", "postgresql+asyncpg://")
        result = asyncio.run(measure(url, args.items, args.per_batch))
        write_result("s7_digests", result)
        print(json.dumps(result))
    finally:
        drop_db(DB)


if __name__ == "__main__":
    main()
