"""HTTP load generator, run as its own process: ``python bench/loadgen.py '<json spec>'``.

Bounded twice: every job stops at ``duration`` seconds or ``max_requests`` requests,
whichever comes first. It only ever targets the URLs in its spec (the bench passes
127.0.0.1 ones; anything else is refused). Prints one JSON line with the results.

Spec::

    {"jobs": [{"name": "ingest", "mode": "rate" | "closed", "rate": 500, "concurrency": 64,
               "duration": 10, "max_requests": 100000, "warmup": 1,
               "users": 1000, "user_prefix": "u",
               "requests": [{"method": "POST", "url": ".../{u}", "headers": {...},
                             "body": "{\"user_id\": \"{u}\"}", "weight": 1}]}]}

``{u}`` (in url, body and header values) becomes a random user (``user_prefix`` +
``user_offset`` + 0..users-1), ``{i}`` a counter. In
``rate`` mode (open loop) latency counts from the moment the request was due, so a server
or a generator that falls behind shows up in the percentiles instead of being hidden.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None  # type: ignore[assignment]


def _pct(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    s = sorted(values)

    def at(q: float) -> float:
        return round(s[min(len(s) - 1, max(0, int(q * len(s) + 0.5) - 1))] * 1000, 3)

    return {"p50_ms": at(0.5), "p95_ms": at(0.95), "p99_ms": at(0.99), "max_ms": at(1.0)}


class Job:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.name = spec.get("name", "job")
        self.mode = spec.get("mode", "closed")
        self.duration = float(spec.get("duration", 10))
        self.max_requests = int(spec.get("max_requests", 1_000_000))
        self.warmup = float(spec.get("warmup", 0))
        self.users = int(spec.get("users", 1))
        self.prefix = spec.get("user_prefix", "u")
        self.offset = int(spec.get("user_offset", 0))
        self.templates = spec["requests"]
        for t in self.templates:
            host = urlsplit(t["url"]).hostname
            if host not in ("127.0.0.1", "localhost", "::1"):
                raise SystemExit(f"refusing non-loopback target {t['url']}")
        weights = [float(t.get("weight", 1)) for t in self.templates]
        self.cum = [sum(weights[: i + 1]) / sum(weights) for i in range(len(weights))]
        self.counter = 0
        self.sent = 0
        self.latencies: list[float] = []
        self.by_name: dict[str, list[float]] = {}
        self.status: dict[str, int] = {}
        self.measured_from = 0.0
        self.measured_to = 0.0

    def pick(self) -> tuple[dict[str, Any], str, bytes | None, dict[str, str] | None]:
        r = random.random()
        t = next(t for t, c in zip(self.templates, self.cum, strict=True) if r <= c)
        self.counter += 1
        u = f"{self.prefix}{self.offset + random.randrange(self.users)}"
        url = t["url"].replace("{u}", u).replace("{i}", str(self.counter))
        headers = t.get("headers")
        if headers and any("{u}" in v for v in headers.values()):
            headers = {k: v.replace("{u}", u) for k, v in headers.items()}
        body = t.get("body")
        data = body.replace("{u}", u).replace("{i}", str(self.counter)).encode() if body else None
        return t, url, data, headers

    async def one(self, session: aiohttp.ClientSession, due: float) -> None:
        t, url, data, headers = self.pick()
        try:
            async with session.request(
                t.get("method", "GET"),
                url,
                data=data,
                headers=headers,
                allow_redirects=False,
            ) as resp:
                await resp.read()
                key = str(resp.status)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            key = type(exc).__name__
        done = time.perf_counter()
        if due >= self.measured_from:
            self.status[key] = self.status.get(key, 0) + 1
            lat = done - due
            self.latencies.append(lat)
            self.by_name.setdefault(t.get("name", t.get("method", "GET")), []).append(lat)
            self.measured_to = done

    async def run(self, session: aiohttp.ClientSession) -> None:
        start = time.perf_counter()
        self.measured_from = start + self.warmup
        end = start + self.warmup + self.duration
        if self.mode == "rate":
            rate = float(self.spec["rate"])
            sem = asyncio.Semaphore(int(self.spec.get("concurrency", 256)))
            tasks: set[asyncio.Task[None]] = set()

            async def guarded(due: float) -> None:
                async with sem:
                    await self.one(session, due)

            n = 0
            while n < self.max_requests:
                due = start + n / rate
                if due >= end:
                    break
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(guarded(due))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                n += 1
            if tasks:
                await asyncio.wait(tasks, timeout=30)
            self.sent = n
        else:

            async def worker() -> None:
                while time.perf_counter() < end and self.sent < self.max_requests:
                    self.sent += 1
                    await self.one(session, time.perf_counter())

            await asyncio.gather(*(worker() for _ in range(int(self.spec.get("concurrency", 8)))))
        if not self.measured_to:
            self.measured_to = time.perf_counter()

    def result(self) -> dict[str, Any]:
        window = max(1e-9, self.measured_to - self.measured_from)
        ok = sum(v for k, v in self.status.items() if k.startswith("2"))
        return {
            "name": self.name,
            "mode": self.mode,
            "requests": len(self.latencies),
            "ok": ok,
            "status": self.status,
            "seconds": round(window, 3),
            "throughput_per_s": round(len(self.latencies) / window, 1),
            "ok_per_s": round(ok / window, 1),
            **_pct(self.latencies),
            "per_request": {k: {"n": len(v), **_pct(v)} for k, v in self.by_name.items()},
        }


async def main(spec: dict[str, Any]) -> dict[str, Any]:
    jobs = [Job(j) for j in spec["jobs"]]
    limit = sum(int(j.spec.get("concurrency", 8)) for j in jobs)
    connector = aiohttp.TCPConnector(limit=limit, force_close=False)
    timeout = aiohttp.ClientTimeout(total=float(spec.get("request_timeout", 30)))
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(j.run(session) for j in jobs))
    return {"jobs": {j.name: j.result() for j in jobs}}


if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    if uvloop is not None:
        uvloop.install()
    print(json.dumps(asyncio.run(main(spec))), flush=True)
