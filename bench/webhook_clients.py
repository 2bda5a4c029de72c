"""Webhook POSTs through Clarion's own HTTP/1.1 client and through aiohttp's, side by side.

    .venv/bin/python bench/webhook_clients.py --n 20000            # 3 runs, medians
    .venv/bin/python bench/webhook_clients.py --n 2000 --runs 1    # a quick look

Issue 12, point 6: ``clarion/delivery/channels/http1_client.py`` is a hand-written client;
is aiohttp's (maintained, C parser) as fast for the webhook channel's job? Both send the
same signed POSTs, through the same channel code, to one local receiver:

* **ours**: :class:`~clarion.delivery.channels.webhook.WebhookChannel` as the worker uses
  it (guard check, Standard Webhooks signature, ``Http1Pool``);
* **aiohttp**: the same channel with only the HTTP exchange replaced by an
  ``aiohttp.ClientSession`` (keep-alive ``TCPConnector``) under the same address rules:
  the URL is rewritten to the address the guard checked (``Host`` header and TLS
  ``server_hostname`` keep the name; aiohttp pools on address *and* server name), a
  resolver that refuses every name backs that up, ``allow_redirects=False``,
  ``trust_env=False``, no cookie jar, no decompression, the same 10 s total timeout, 5 s
  keep-alive and the same body limits (first 300 bytes kept, more than 64 KiB: the
  connection is dropped).

The webhook URL names a host (``receiver.bench.invalid``) that only the guard's injected
resolver knows (it answers 127.0.0.1, with private targets allowed as in every bench), so
a client that resolved the name itself instead of dialling the checked address would
fail. Each run starts the receiver (raw asyncio + httptools, uvloop when installed, in a
process of its own, bounded in requests and seconds, gone when this script's stdin
closes), checks that both clients leave a redirect unfollowed, warms both up, then sends
``--n`` POSTs through each with the worker's concurrency (64 in flight), alternating which
goes first. Reported per client: deliveries/s, CPU seconds of this process per 1,000
deliveries (``time.process_time``; the receiver's own CPU is reported apart), mean request
bytes and header names as the receiver saw them; and the ratios aiohttp/ours of the same
run. The medians over the runs decide (issue 12: aiohttp at >= 0.75 x ours' deliveries/s
would be chosen). Writes ``bench/results/webhook_clients.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` and `clarion` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from bench.common import RESULTS, cpu_seconds, dirty_files, free_port, git_commit
from clarion import gc_tuning
from clarion.delivery.channels.base import (
    Contact,
    Outcome,
    RenderedMessage,
    SendResult,
    WebhookTarget,
)
from clarion.delivery.channels.http1_client import (
    BODY_DRAIN_LIMIT,
    BODY_KEEP,
    Response,
    default_ssl_context,
)
from clarion.delivery.channels.webhook import (
    USER_AGENT,
    SignedRequest,
    WebhookChannel,
)
from clarion.delivery.dispatch import webhook_payload
from clarion.domain.webhook_secrets import generate_webhook_secret
from clarion.services.netguard import CheckedTarget, UrlGuard

OUT = RESULTS / "webhook_clients.json"
HOST = "receiver.bench.invalid"  # resolvable only through the guard's injected resolver
CONCURRENCY = 64  # Settings.worker_concurrency's default: sends in flight per worker
WARMUP = 1_000
CREATED = datetime(2026, 11, 24, 6, 39, tzinfo=UTC)
THRESHOLD = 0.75  # issue 12: aiohttp is chosen at >= 0.75 x ours' deliveries/s

# --- the receiver (a process of its own) ------------------------------------------------

RECEIVER = r"""
import asyncio, json, sys, time
import httptools

max_requests, limit = int(sys.argv[2]), float(sys.argv[3])
stats = {"requests": 0, "bytes": 0, "connections": 0, "headers": []}
done = None

class Receiver(asyncio.Protocol):
    def connection_made(self, transport):
        self.t = transport
        self.parser = httptools.HttpRequestParser(self)
        self.names = []
        stats["connections"] += 1

    def data_received(self, data):
        stats["bytes"] += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.t.close()

    def on_url(self, url):
        self.path = url

    def on_header(self, name, value):
        self.names.append(name.decode("latin-1"))

    def on_message_complete(self):
        stats["requests"] += 1
        stats["headers"], self.names = self.names, []
        if self.path.startswith(b"/redirect"):
            self.t.write(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://10.0.0.1/x\r\n"
                         b"Content-Length: 0\r\n\r\n")
        else:
            self.t.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        if stats["requests"] >= max_requests and not done.done():
            done.set_result("requests")

async def commands():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        if line.strip() == b"stats":
            print(json.dumps(stats), flush=True)
            stats.update(requests=0, bytes=0, connections=0, headers=[])
        elif line.strip() == b"quit":
            break
    if not done.done():
        done.set_result("stdin")

async def main():
    global done
    done = asyncio.get_running_loop().create_future()
    server = await asyncio.get_running_loop().create_server(
        Receiver, "127.0.0.1", int(sys.argv[1]), backlog=1024)
    print(json.dumps({"ready": True}), flush=True)
    task = asyncio.create_task(commands())
    try:
        await asyncio.wait_for(done, limit)
    except asyncio.TimeoutError:
        pass
    task.cancel()
    server.close()

try:
    import uvloop
    uvloop.run(main())
except ImportError:
    asyncio.run(main())
"""


class Receiver:
    """The receiver process: started and ended by this script, by PID."""

    def __init__(self, max_requests: int, limit: float) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", RECEIVER, str(self.port), str(max_requests), str(limit)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        if json.loads(self._line()) != {"ready": True}:
            raise RuntimeError("receiver did not start")

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"receiver exited with {self.proc.wait(5)}")
        return line

    def stats(self) -> dict[str, Any]:
        """What it saw since the last call (then reset), and its CPU seconds so far."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("stats\n")
        stats: dict[str, Any] = json.loads(self._line())
        stats["cpu_seconds"] = cpu_seconds(self.proc.pid)
        return stats

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)


# --- aiohttp under the webhook channel's address rules ----------------------------------


class NoNames(AbstractResolver):
    """Refuses every name: the session is only ever given checked addresses (aiohttp does
    not ask the resolver for IP literals), so a name reaching it is a bug, not a target."""

    async def resolve(self, host: str, port: int = 0, family: Any = 0) -> list[ResolveResult]:
        raise OSError(f"refusing to resolve {host!r}: only checked addresses are dialled")

    async def close(self) -> None:
        return None


class AiohttpWebhookChannel(WebhookChannel):
    """:class:`WebhookChannel` with the HTTP exchange done by an ``aiohttp.ClientSession``.

    Everything else is the channel's own: payload encoding, the guard, the signature, the
    classification of the answer (``_classify``)."""

    def __init__(
        self, *, guard: UrlGuard, timeout: float = 10.0, keepalive_seconds: float = 5.0
    ) -> None:
        super().__init__(guard=guard, timeout=timeout, keepalive_seconds=keepalive_seconds)
        self._timeout = timeout
        self._keepalive = keepalive_seconds
        self._session: aiohttp.ClientSession | None = None
        self._pinned: dict[str, tuple[URL, dict[str, str], str | None]] = {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                resolver=NoNames(),
                use_dns_cache=False,
                limit=0,  # like Http1Pool: no cap on connections in flight
                keepalive_timeout=self._keepalive,
                ssl=default_ssl_context(),
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                trust_env=False,  # no proxy from the environment: it would re-resolve
                cookie_jar=aiohttp.DummyCookieJar(),  # receivers' cookies never go back
                auto_decompress=False,
                skip_auto_headers=("Accept-Encoding",),  # the channel's exact headers
                timeout=aiohttp.ClientTimeout(total=self._timeout),  # the whole exchange
            )
        return self._session

    def _pin(self, url: str, checked: CheckedTarget) -> tuple[URL, dict[str, str], str | None]:
        """The URL with the checked address as host, the fixed headers, the TLS name."""
        cached = self._pinned.get(url)
        if cached is None:
            parsed = checked.url
            pinned = URL(str(parsed.copy_with(host=checked.address)), encoded=True)
            headers = {
                "Host": parsed.netloc.decode("ascii"),
                "User-Agent": USER_AGENT,
                "Accept": "*/*",
                "Content-Type": "application/json",
            }
            server_hostname = checked.host if parsed.scheme == "https" else None
            cached = (pinned, headers, server_hostname)
            if len(self._pinned) >= self.CACHE_SIZE:
                self._pinned.clear()
            self._pinned[url] = cached
        return cached

    async def exchange(self, signed: SignedRequest) -> SendResult:
        url, fixed, server_hostname = self._pin(signed.url, signed.checked)
        headers = {
            **fixed,
            "webhook-id": signed.delivery_id,
            "webhook-timestamp": str(signed.timestamp),
            "webhook-signature": signed.signature,
        }
        try:
            async with self._client().post(
                url,
                data=signed.body,
                headers=headers,
                allow_redirects=False,
                server_hostname=server_hostname,
            ) as resp:
                kept = bytearray()
                seen = 0
                async for chunk in resp.content.iter_any():
                    if len(kept) < BODY_KEEP:
                        kept += chunk[: BODY_KEEP - len(kept)]
                    seen += len(chunk)
                    if seen > BODY_DRAIN_LIMIT:
                        resp.close()  # enough: drop the connection, as Http1Pool does
                        break
                response = Response(
                    resp.status, {k.lower(): v for k, v in resp.headers.items()}, bytes(kept)
                )
        except TimeoutError:
            return self._result(Outcome.TRANSIENT, "timeout (aiohttp)", signed.url)
        except (aiohttp.ClientError, OSError) as exc:
            detail = f"connection failed ({type(exc).__name__})"
            return self._result(Outcome.TRANSIENT, detail, signed.url)
        return self._classify(response, signed.url)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
        await super().aclose()


# --- the measurement --------------------------------------------------------------------


def guard() -> UrlGuard:
    async def resolver(host: str, port: int) -> Sequence[str]:
        if host != HOST:
            raise OSError(f"unknown host {host!r}")
        return ["127.0.0.1"]

    return UrlGuard(allow_private=True, resolver=resolver)


def message(i: int) -> RenderedMessage:
    """What the worker renders for the webhook delivery of a plain notification (the
    payload is ``dispatch.webhook_payload``'s, as S6 sends: title, no message)."""
    delivery_id = str(uuid.uuid4())
    n = {
        "id": 1_000_000 + i,
        "user_id": f"u{i}",
        "type": "bench",
        "title": "bench",
        "message": None,
        "template": None,
        "priority": "normal",
        "content": {},
        "data": {},
        "group_key": None,
        "created_at": CREATED,
    }
    return RenderedMessage(
        delivery_id=delivery_id,
        notification_id=n["id"],
        user_id=n["user_id"],
        type="bench",
        priority="normal",
        title="bench",
        text="bench",
        payload=webhook_payload(delivery_id, n),
    )


async def send_all(
    channel: WebhookChannel, target: WebhookTarget, messages: list[RenderedMessage]
) -> dict[str, int]:
    """Every message sent, ``CONCURRENCY`` in flight; outcomes counted."""
    contact = Contact(user_id="u", webhook=target)
    outcomes: dict[str, int] = {}
    it = iter(messages)

    async def lane() -> None:
        for msg in it:
            result = await channel.send(msg, contact)
            outcomes[result.outcome.value] = outcomes.get(result.outcome.value, 0) + 1

    await asyncio.gather(*(lane() for _ in range(CONCURRENCY)))
    return outcomes


async def measure(
    name: str, channel: WebhookChannel, target: WebhookTarget, n: int, receiver: Receiver
) -> dict[str, Any]:
    await send_all(channel, target, [message(i) for i in range(WARMUP)])  # connections, caches
    messages = [message(i) for i in range(n)]  # built before the clock starts
    before = receiver.stats()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    outcomes = await send_all(channel, target, messages)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    seen = receiver.stats()
    if outcomes.get(Outcome.DELIVERED.value) != n:
        raise RuntimeError(f"{name}: not every POST was delivered: {outcomes}")
    return {
        "deliveries_per_s": round(n / elapsed, 1),
        "cpu_s_per_1000": round(cpu / n * 1000, 4),
        "seconds": round(elapsed, 3),
        "receiver_cpu_s_per_1000": round(
            (seen["cpu_seconds"] - before["cpu_seconds"]) / n * 1000, 4
        ),
        "request_bytes_mean": round(seen["bytes"] / max(1, seen["requests"]), 1),
        "requests_seen": seen["requests"],
        "new_connections": seen["connections"],
        "header_names": seen["headers"],
    }


async def redirect_check(channel: WebhookChannel, port: int, secret: str) -> str:
    """A 307 must come back as a permanent failure, not be followed."""
    target = WebhookTarget("r", f"http://{HOST}:{port}/redirect", secret)
    result = await channel.send(message(0), Contact(user_id="u", webhook=target))
    if result.outcome is not Outcome.PERMANENT or "not followed" not in (result.detail or ""):
        raise RuntimeError(f"redirect handled wrongly: {result}")
    return result.detail or ""


async def one_run(n: int, aiohttp_first: bool, limit: float) -> dict[str, Any]:
    receiver = Receiver(max_requests=2 * (n + WARMUP) + 10, limit=limit)
    try:
        secret = generate_webhook_secret()
        target = WebhookTarget("e", f"http://{HOST}:{receiver.port}/hook", secret)
        ours = WebhookChannel(guard=guard())
        theirs = AiohttpWebhookChannel(guard=guard())
        checks = {
            "ours": await redirect_check(ours, receiver.port, secret),
            "aiohttp": await redirect_check(theirs, receiver.port, secret),
        }
        order = [("aiohttp", theirs), ("ours", ours)]
        if not aiohttp_first:
            order.reverse()
        figures = {}
        for name, channel in order:
            figures[name] = await measure(name, channel, target, n, receiver)
            await channel.aclose()
        return {
            "order": [name for name, _ in order],
            "redirect_not_followed": checks,
            "ours": figures["ours"],
            "aiohttp": figures["aiohttp"],
            "ratio_aiohttp_to_ours": {
                "deliveries_per_s": round(
                    figures["aiohttp"]["deliveries_per_s"] / figures["ours"]["deliveries_per_s"], 3
                ),
                "cpu_s_per_1000": round(
                    figures["aiohttp"]["cpu_s_per_1000"] / figures["ours"]["cpu_s_per_1000"], 3
                ),
            },
        }
    finally:
        receiver.close()


def median_of(runs: list[dict[str, Any]], *path: str) -> float:
    values = []
    for run in runs:
        value: Any = run
        for key in path:
            value = value[key]
        values.append(float(value))
    return round(statistics.median(values), 4)


def table(runs: list[dict[str, Any]], median: dict[str, Any]) -> str:
    rows = [
        "| run | first | ours deliveries/s | aiohttp deliveries/s | ratio | "
        "ours CPU s/1000 | aiohttp CPU s/1000 | CPU ratio |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for i, run in enumerate(runs, 1):
        o, a, r = run["ours"], run["aiohttp"], run["ratio_aiohttp_to_ours"]
        rows.append(
            f"| {i} | {run['order'][0]} | {o['deliveries_per_s']:,.0f} | "
            f"{a['deliveries_per_s']:,.0f} | {r['deliveries_per_s']:.3f} | "
            f"{o['cpu_s_per_1000']:.3f} | {a['cpu_s_per_1000']:.3f} | {r['cpu_s_per_1000']:.3f} |"
        )
    m = median
    rows.append(
        f"| median | | {m['ours']['deliveries_per_s']:,.0f} | "
        f"{m['aiohttp']['deliveries_per_s']:,.0f} | "
        f"{m['ratio_aiohttp_to_ours']['deliveries_per_s']:.3f} | "
        f"{m['ours']['cpu_s_per_1000']:.3f} | {m['aiohttp']['cpu_s_per_1000']:.3f} | "
        f"{m['ratio_aiohttp_to_ours']['cpu_s_per_1000']:.3f} |"
    )
    return "\n".join(rows)


async def main(n: int, runs: int, limit: float) -> dict[str, Any]:
    gc_tuning.settle()  # as `clarion worker` does once started
    results = []
    for i in range(runs):
        results.append(await one_run(n, aiohttp_first=i % 2 == 1, limit=limit))
    keys = ("deliveries_per_s", "cpu_s_per_1000")
    median = {
        who: {k: median_of(results, who, k) for k in keys}
        for who in ("ours", "aiohttp", "ratio_aiohttp_to_ours")
    }
    ratio = median["ratio_aiohttp_to_ours"]["deliveries_per_s"]
    return {
        "scenario": "webhook_clients",
        "setup": (
            f"{n} signed webhook POSTs per client and run ({WARMUP} warm-up first), "
            f"{CONCURRENCY} in flight, WebhookChannel with Http1Pool (ours) or an aiohttp "
            "ClientSession (keep-alive TCPConnector, pinned address, no redirects, "
            "trust_env=False); receiver: asyncio + httptools in its own process, 204; "
            "CPU of this process (time.process_time) over the measured sends"
        ),
        "commit": git_commit(),
        "uncommitted_clarion_files": dirty_files(),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "cpus": os.cpu_count(),
        "n": n,
        "concurrency": CONCURRENCY,
        "runs": results,
        "median": median,
        "threshold": THRESHOLD,
        "aiohttp_within_threshold": ratio >= THRESHOLD,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="measured POSTs per client")
    parser.add_argument("--runs", type=int, default=3, help="runs; medians are reported")
    parser.add_argument("--limit", type=float, default=300, help="receiver's lifetime, s")
    args = parser.parse_args()
    result = asyncio.run(main(args.n, args.runs, args.limit))
    RESULTS.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result["runs"], result["median"]))
    ratio = result["median"]["ratio_aiohttp_to_ours"]["deliveries_per_s"]
    verdict = "within" if result["aiohttp_within_threshold"] else "below"
    print(
        f"\naiohttp/ours deliveries/s (median): {ratio:.3f}, {verdict} the issue's "
        f"{THRESHOLD} threshold; written to {OUT.relative_to(RESULTS.parent.parent)}"
    )
