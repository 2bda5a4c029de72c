"""The webhook channel's own HTTP client and the guard's DNS cache, against real sockets.

"The internet" is played by a dialer that maps one public address to a local receiver and
refuses everything else, so nothing here leaves the machine.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable, Sequence

import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from clarion.delivery.channels.base import Contact, Outcome, WebhookTarget
from clarion.delivery.channels.webhook import WebhookChannel
from clarion.domain.webhook_secrets import generate_webhook_secret
from clarion.services.netguard import BlockedURL, UrlGuard

from .conftest import Receiver, make_message

SECRET = generate_webhook_secret()
PUBLIC = "93.184.216.34"


def contact(url: str) -> Contact:
    return Contact(user_id="u1", webhook=WebhookTarget("ep_1", url, SECRET))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingResolver:
    """A DNS server whose answers a test changes; counts the questions."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        await asyncio.sleep(0.01)  # a real lookup takes time: lets callers overlap
        if host not in self.table:
            raise OSError(f"unknown host {host}")
        return self.table[host]


class Internet:
    """A dialer: ``PUBLIC`` reaches the local receiver, every other address is refused.
    Records every dial and the local port of each connection it made."""

    def __init__(self, local_port: int) -> None:
        self.local_port = local_port
        self.dialled: list[str] = []
        self.local_ports: list[int] = []

    async def __call__(
        self,
        factory: Callable[[], asyncio.Protocol],
        address: str,
        port: int,
        ssl_context: ssl.SSLContext | None,
        server_hostname: str | None,
    ) -> tuple[asyncio.BaseTransport, asyncio.Protocol]:
        self.dialled.append(address)
        if address != PUBLIC:
            raise ConnectionRefusedError(f"test network: {address} unreachable")
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_connection(factory, "127.0.0.1", self.local_port)
        self.local_ports.append(transport.get_extra_info("sockname")[1])
        return transport, protocol


class PeerRecorder(Receiver):
    """The channel tests' receiver, also noting which client connection each request
    came over (its remote port)."""

    def __init__(self) -> None:
        super().__init__()
        self.peers: list[int] = []

    async def _handle(self, request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.peers.append(int(peer[1]) if peer else -1)
        return await super()._handle(request)


@pytest.fixture
async def peers() -> PeerRecorder:
    r = PeerRecorder()
    await r.start()
    yield r  # type: ignore[misc]
    await r.stop()


# --- DNS cache ------------------------------------------------------------------------


async def test_cached_resolution_still_refuses_loopback() -> None:
    resolver = CountingResolver({"evil.test": ["127.0.0.1"]})
    guard = UrlGuard(resolver=resolver, dns_ttl=60, clock=Clock())
    for _ in range(3):
        with pytest.raises(BlockedURL, match=r"127\.0\.0\.1"):
            await guard.check("http://evil.test/hook")
    assert resolver.asked == ["evil.test"]  # resolved once, refused every time


async def test_cache_expires_and_a_rebind_to_internal_is_refused() -> None:
    clock = Clock()
    resolver = CountingResolver({"hooks.test": [PUBLIC]})
    guard = UrlGuard(resolver=resolver, dns_ttl=10, clock=clock)
    first = await guard.check("http://hooks.test/a")
    again = await guard.check("http://hooks.test/a")
    other_path = await guard.check("http://hooks.test/b")
    assert first.address == again.address == other_path.address == PUBLIC
    assert resolver.asked == ["hooks.test"]

    resolver.table["hooks.test"] = ["10.0.0.7"]  # the name now points inside
    clock.now += 9
    assert (await guard.check("http://hooks.test/a")).address == PUBLIC  # within the TTL
    clock.now += 2
    with pytest.raises(BlockedURL, match=r"10\.0\.0\.7"):
        await guard.check("http://hooks.test/a")
    with pytest.raises(BlockedURL):  # refusals are not cached as passes either
        await guard.check("http://hooks.test/b")
    assert resolver.asked == ["hooks.test", "hooks.test"]


async def test_concurrent_checks_share_one_lookup_and_failures_are_not_cached() -> None:
    resolver = CountingResolver({"hooks.test": [PUBLIC]})
    guard = UrlGuard(resolver=resolver, clock=Clock())
    checked = await asyncio.gather(*(guard.check(f"http://hooks.test/{i}") for i in range(20)))
    assert {c.address for c in checked} == {PUBLIC}
    assert resolver.asked == ["hooks.test"]

    for _ in range(2):
        with pytest.raises(BlockedURL, match="cannot resolve"):
            await guard.check("http://missing.test/")
    assert resolver.asked.count("missing.test") == 2


async def test_a_mixed_answer_is_refused_from_the_cache_too() -> None:
    resolver = CountingResolver({"rebind.test": [PUBLIC, "169.254.169.254"]})
    guard = UrlGuard(resolver=resolver, clock=Clock())
    for _ in range(2):
        with pytest.raises(BlockedURL, match=r"169\.254\.169\.254"):
            await guard.check("https://rebind.test/hook")
    assert resolver.asked == ["rebind.test"]


# --- keep-alive pool --------------------------------------------------------------------


async def test_keep_alive_reuses_one_connection_per_endpoint(peers: PeerRecorder) -> None:
    internet = Internet(peers.port)
    resolver = CountingResolver({"hooks.test": [PUBLIC]})
    channel = WebhookChannel(guard=UrlGuard(resolver=resolver), timeout=5, dialer=internet)
    try:
        results = [
            await channel.send(make_message(), contact("http://hooks.test/hook")) for _ in range(5)
        ]
    finally:
        await channel.aclose()
    assert [r.outcome for r in results] == [Outcome.DELIVERED] * 5
    assert internet.dialled == [PUBLIC]  # one connection for five requests
    assert len(set(peers.peers)) == 1
    for req in peers.requests:
        assert req.headers["host"] == "hooks.test"
        Webhook(SECRET).verify(req.body, req.headers)
    assert resolver.asked == ["hooks.test"]


async def test_connections_are_not_shared_between_host_names(peers: PeerRecorder) -> None:
    """Two names on the same address and port: each has its own connections (a TLS
    session verified for one name must never carry another name's requests)."""
    internet = Internet(peers.port)
    guard = UrlGuard(resolver=CountingResolver({"a.test": [PUBLIC], "b.test": [PUBLIC]}))
    channel = WebhookChannel(guard=guard, timeout=5, dialer=internet)
    try:
        for url in ["http://a.test/1", "http://b.test/1", "http://a.test/2", "http://b.test/2"]:
            result = await channel.send(make_message(), contact(url))
            assert result.outcome is Outcome.DELIVERED
    finally:
        await channel.aclose()
    assert len(internet.dialled) == 2
    by_host: dict[str, set[int]] = {}
    for req, peer in zip(peers.requests, peers.peers, strict=True):
        by_host.setdefault(req.headers["host"], set()).add(peer)
    assert len(by_host["a.test"]) == 1 and len(by_host["b.test"]) == 1
    assert by_host["a.test"].isdisjoint(by_host["b.test"])


async def test_a_connection_the_receiver_closed_is_replaced() -> None:
    """The receiver drops idle keep-alive connections quickly: the next send must not
    fail because of it."""
    receiver = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", receiver._handle)
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = int(runner.addresses[0][1])
    channel = WebhookChannel(guard=UrlGuard(allow_private=True), timeout=5)
    try:
        first = await channel.send(make_message(), contact(f"http://127.0.0.1:{port}/hook"))
        await asyncio.sleep(0.4)  # the server has closed our idle connection by now
        second = await channel.send(make_message(), contact(f"http://127.0.0.1:{port}/hook"))
    finally:
        await channel.aclose()
        await runner.cleanup()
    assert first.outcome is Outcome.DELIVERED
    assert second.outcome is Outcome.DELIVERED, second.detail
    assert len(receiver.requests) == 2
    assert channel.pool.opened == 2


async def test_a_receiver_that_never_answers_times_out_transient() -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    channel = WebhookChannel(guard=UrlGuard(allow_private=True), timeout=0.3)
    try:
        result = await channel.send(make_message(), contact(f"http://127.0.0.1:{port}/hook"))
    finally:
        await channel.aclose()
        silent.close()
    assert result.outcome is Outcome.TRANSIENT
    assert result.detail is not None and result.detail.startswith("timeout")
    assert channel.pool.idle_count() == 0  # a timed-out connection is never reused


async def test_error_body_is_kept_short_and_connection_stays_usable(peers: PeerRecorder) -> None:
    async def chatty(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=500, body=b"x" * 100_000)

    app = web.Application()
    app.router.add_post("/boom", chatty)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = int(runner.addresses[0][1])
    channel = WebhookChannel(guard=UrlGuard(allow_private=True), timeout=5)
    try:
        boom = await channel.send(make_message(), contact(f"http://127.0.0.1:{port}/boom"))
        ok = await channel.send(make_message(), contact(peers.url("/hook")))
    finally:
        await channel.aclose()
        await runner.cleanup()
    assert boom.outcome is Outcome.TRANSIENT
    assert boom.detail is not None and len(boom.detail) < 300
    assert ok.outcome is Outcome.DELIVERED


def test_sends_on_uvloop_as_clarion_serve_runs() -> None:
    """``clarion serve`` runs on uvloop (through uvicorn), whose transports implement
    asyncio's interface without subclassing it: the client must not care."""
    import uvloop

    async def scenario() -> list[Outcome]:
        receiver = PeerRecorder()
        await receiver.start()
        channel = WebhookChannel(
            guard=UrlGuard(resolver=CountingResolver({"hooks.test": [PUBLIC]})),
            timeout=5,
            dialer=Internet(receiver.port),
        )
        try:
            return [
                (await channel.send(make_message(), contact("http://hooks.test/hook"))).outcome
                for _ in range(3)
            ]
        finally:
            await channel.aclose()
            await receiver.stop()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(scenario()) == [Outcome.DELIVERED] * 3
