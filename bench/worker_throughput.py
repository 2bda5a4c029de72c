"""Worker throughput: deliveries/s from a PostgreSQL outbox to a local webhook sink.

    .venv/bin/python bench/worker_throughput.py [--deliveries 5000] [--workers 1]
    .venv/bin/python bench/worker_throughput.py --deliveries 5000 --processes 2

Creates a scratch database on 127.0.0.1:5432, seeds N webhook deliveries, runs real
worker(s) against a sink in a separate process (so the sink does not steal the worker's
event loop), and reports deliveries/s. By default the worker runs in this process (after
the seeding); ``--processes N`` instead starts N ``clarion worker`` processes (the real
CLI), holds the seeded rows until all of them are connected, then releases them at once.
For scale, the same run measures the raw rate of signed POSTs to that sink with the same
concurrency and no database (the ceiling the HTTP side allows); the ratio is what the
outbox costs. CPU per delivery (worker process(es) and sink, from /proc, over the drain
only) is the figure least moved by a noisy machine. Writes bench/results/worker.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
from sqlalchemy import text

from clarion.config import Settings
from clarion.delivery.channels.base import Contact, RenderedMessage, WebhookTarget
from clarion.delivery.channels.webhook import WebhookChannel
from clarion.domain.send_command import SendCommand
from clarion.domain.types import ChannelName
from clarion.domain.webhook_secrets import generate_webhook_secret
from clarion.runtime import Runtime
from clarion.services.container import Services
from clarion.services.netguard import UrlGuard
from clarion.store.migrate import upgrade

ADMIN = os.environ.get("CLARION_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
RESULTS = Path(__file__).parent / "results" / "worker.json"

SINK = """
import sys
from aiohttp import web
async def hook(request):
    await request.read()
    return web.Response(status=204)
app = web.Application()
app.router.add_post("/hook", hook)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_port(port: int) -> None:
    for _ in range(100):
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError("sink did not start")


async def raw_rate(url: str, n: int, concurrency: int) -> float:
    """Signed POSTs straight from the channel, no database: the HTTP ceiling."""
    channel = WebhookChannel(guard=UrlGuard(allow_private=True))
    target = WebhookTarget("e", url, generate_webhook_secret())
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        msg = RenderedMessage(
            delivery_id=str(uuid.uuid4()),
            notification_id=i,
            user_id="u",
            type="t",
            priority="normal",
            title="t",
            text="x",
            payload={"n": i},
        )
        async with sem:
            await channel.send(msg, Contact(user_id="u", webhook=target))

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    elapsed = time.perf_counter() - t0
    await channel.aclose()
    return n / elapsed


async def _drained(services: Services, n: int) -> None:
    """Until no delivery is left to do, then check that every one was delivered.

    The poll asks the claim index (status leads ``ix_deliveries_due``) whether any row
    is still open: a full ``count(*)`` over 100,000 rows every 50 ms cost PostgreSQL a
    visible share of the machine the worker is measured on."""
    while True:
        await asyncio.sleep(0.05)
        async with services.db.connect() as conn:
            open_left = (
                await conn.execute(
                    text(
                        "SELECT EXISTS (SELECT 1 FROM deliveries WHERE status IN "
                        "('scheduled', 'pending', 'sending', 'failed'))"
                    )
                )
            ).scalar_one()
        if not open_left:
            break
    async with services.db.connect() as conn:
        delivered = (
            await conn.execute(text("SELECT count(*) FROM deliveries WHERE status = 'delivered'"))
        ).scalar_one()
    if delivered != n:
        raise RuntimeError(f"{n - delivered} of {n} deliveries ended other than delivered")


async def _run_processes(
    services: Services, settings: Settings, name: str, processes: int, n: int
) -> tuple[float, float]:
    """N ``clarion worker`` processes; returns (seconds, their CPU seconds) for the drain."""
    async with services.db.begin() as conn:
        # Hold every row until the workers are up, so their start-up is not timed.
        await conn.execute(text("UPDATE deliveries SET next_attempt_at = now() + interval '1 day'"))
    env = {
        **os.environ,
        "CLARION_DATABASE_URL": settings.database_url,
        "CLARION_SECRET_KEY": settings.secret_key.get_secret_value() if settings.secret_key else "",
        "CLARION_WEBHOOK_ALLOW_PRIVATE": "true",
        "CLARION_WORKER_CONCURRENCY": str(settings.worker_concurrency),
        "CLARION_WORKER_BATCH_SIZE": str(settings.worker_batch_size),
        "CLARION_WORKER_POLL_SECONDS": "0.05",
        "CLARION_LOG_LEVEL": "warning",
    }
    env.pop("CLARION_REDIS_URL", None)
    clarion = str(Path(sys.executable).parent / "clarion")
    procs = [subprocess.Popen([clarion, "worker"], env=env, cwd="/tmp") for _ in range(processes)]
    try:
        # Each worker's first poll opens its database connection.
        for _ in range(600):
            async with services.db.connect() as conn:
                seen = (
                    await conn.execute(
                        text(
                            "SELECT count(DISTINCT pid) FROM pg_stat_activity "
                            "WHERE datname = :db AND pid <> pg_backend_pid()"
                        ),
                        {"db": name},
                    )
                ).scalar_one()
            # this process's own pool holds at most a couple of connections
            if seen >= processes + 1:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        cpu0 = sum(proc_cpu(p.pid) for p in procs)
        t0 = time.perf_counter()
        async with services.db.begin() as conn:
            await conn.execute(text("UPDATE deliveries SET next_attempt_at = now()"))
        await _drained(services, n)
        elapsed = time.perf_counter() - t0
        cpu = sum(proc_cpu(p.pid) for p in procs) - cpu0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
    return elapsed, cpu


async def main(
    n: int, workers: int, concurrency: int, batch: int, port: int, processes: int, sink_pid: int
) -> dict[str, object]:
    name = f"clarion_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    try:
        await wait_port(port)
        await upgrade(url)
        settings = Settings(
            database_url=url,
            secret_key="bench-" + "x" * 40,
            embedded_worker=False,
            webhook_allow_private=True,
            worker_concurrency=concurrency,
            worker_batch_size=batch,
            worker_poll_seconds=0.05,
            log_level="warning",
            _env_file=None,  # type: ignore[call-arg]
        )
        services = Services(settings)
        await services.webhooks.create(f"http://127.0.0.1:{port}/hook")
        t_seed = time.perf_counter()
        for start in range(0, n, 1000):
            count = min(1000, n - start)
            await services.sending.send(
                SendCommand(
                    user_ids=tuple(f"u{start + i}" for i in range(count)),
                    type="bench",
                    title="bench",
                    channels=(ChannelName.WEBHOOK,),
                )
            )
        seed_seconds = time.perf_counter() - t_seed
        sink0 = proc_cpu(sink_pid)
        if processes:
            elapsed, worker_cpu = await _run_processes(services, settings, name, processes, n)
            await services.close()
        else:
            pool = [Runtime(settings, services)] + [Runtime(settings) for _ in range(workers - 1)]
            cpu0 = time.process_time()
            t0 = time.perf_counter()
            for rt in pool:
                await rt.start_worker()
            await _drained(services, n)
            elapsed = time.perf_counter() - t0
            worker_cpu = time.process_time() - cpu0
            for rt in pool:
                await rt.close()
        sink_cpu = proc_cpu(sink_pid) - sink0
        rate = n / elapsed
        parallel = concurrency * max(workers, processes)
        raw = await raw_rate(f"http://127.0.0.1:{port}/hook", min(n, 5000), parallel)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return {
        "scenario": "webhook deliveries from a PostgreSQL outbox to a local sink",
        "deliveries": n,
        "worker_processes": processes or 1,
        "worker_mode": f"{processes} clarion worker processes"
        if processes
        else f"{workers} worker(s) in the bench process",
        "worker_processes_in_one_loop": 0 if processes else workers,
        "concurrency_per_worker": concurrency,
        "batch_size": batch,
        "seed_seconds": round(seed_seconds, 2),
        "seconds": round(elapsed, 3),
        "deliveries_per_second": round(rate, 1),
        "worker_cpu_us_per_delivery": round(worker_cpu / n * 1e6, 1),
        "worker_cores_used": round(worker_cpu / elapsed, 2),
        "sink_cpu_us_per_delivery": round(sink_cpu / n * 1e6, 1),
        "raw_signed_posts_per_second_no_db": round(raw, 1),
        "ratio_to_raw": round(rate / raw, 3),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument(
        "--processes", type=int, default=0, help="N `clarion worker` processes instead"
    )
    args = parser.parse_args()
    port = free_port()
    sink = subprocess.Popen([sys.executable, "-c", SINK, str(port)])
    try:
        result = asyncio.run(
            main(
                args.deliveries,
                args.workers,
                args.concurrency,
                args.batch,
                port,
                args.processes,
                sink.pid,
            )
        )
    finally:
        sink.terminate()
        sink.wait(5)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
