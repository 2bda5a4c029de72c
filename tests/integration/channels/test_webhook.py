"""Webhooks to a local receiver; signatures checked with the ``standardwebhooks`` package."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from standardwebhooks.webhooks import Webhook

from clarion.delivery.channels.base import Contact, Outcome, WebhookTarget
from clarion.delivery.channels.webhook import WebhookChannel
from clarion.domain.webhook_secrets import generate_webhook_secret
from clarion.services.netguard import BlockedURL, UrlGuard

from .conftest import Receiver, closed_port, make_message

SECRET = generate_webhook_secret()


def contact(url: str, secret: str = SECRET) -> Contact:
    return Contact(user_id="u1", webhook=WebhookTarget("ep_1", url, secret))


def open_channel(**kwargs: object) -> WebhookChannel:
    return WebhookChannel(guard=UrlGuard(allow_private=True), timeout=5, **kwargs)  # type: ignore[arg-type]


async def test_signed_post_verifies_with_standardwebhooks(receiver: Receiver) -> None:
    channel = open_channel()
    message = make_message()
    try:
        result = await channel.send(message, contact(receiver.url("/hook")))
        again = await channel.send(message, contact(receiver.url("/hook")))
    finally:
        await channel.aclose()

    assert result.outcome is Outcome.DELIVERED, result.detail
    assert again.outcome is Outcome.DELIVERED
    first, second = receiver.at("/hook")
    for req in (first, second):
        assert req.method == "POST"
        assert req.headers["content-type"] == "application/json"
        assert req.headers["webhook-id"] == message.delivery_id
        payload = Webhook(SECRET).verify(req.body, req.headers)
        assert payload == dict(message.payload)
        assert json.loads(req.body) == dict(message.payload)
    # A retry keeps the id, so the receiver can dedupe.
    assert first.headers["webhook-id"] == second.headers["webhook-id"]


async def test_wrong_secret_does_not_verify(receiver: Receiver) -> None:
    channel = open_channel()
    try:
        await channel.send(make_message(), contact(receiver.url("/hook")))
    finally:
        await channel.aclose()
    [req] = receiver.requests
    with pytest.raises(Exception, match="signature"):
        Webhook(generate_webhook_secret()).verify(req.body, req.headers)


async def test_410_disables_endpoint(receiver: Receiver) -> None:
    receiver.reply("/gone", 410)
    channel = open_channel()
    try:
        result = await channel.send(make_message(), contact(receiver.url("/gone")))
    finally:
        await channel.aclose()
    assert result.outcome is Outcome.PERMANENT
    assert result.disable_endpoint is True


async def test_429_honours_retry_after_seconds(receiver: Receiver) -> None:
    receiver.reply("/busy", 429, {"Retry-After": "120"})
    channel = open_channel()
    try:
        result = await channel.send(make_message(), contact(receiver.url("/busy")))
    finally:
        await channel.aclose()
    assert result.outcome is Outcome.TRANSIENT
    assert result.retry_after == 120.0
    assert result.disable_endpoint is False


async def test_503_honours_retry_after_http_date(receiver: Receiver) -> None:
    when = datetime.now(UTC) + timedelta(seconds=300)
    receiver.reply("/down", 503, {"Retry-After": format_datetime(when, usegmt=True)})
    channel = open_channel()
    try:
        result = await channel.send(make_message(), contact(receiver.url("/down")))
    finally:
        await channel.aclose()
    assert result.outcome is Outcome.TRANSIENT
    assert result.retry_after is not None and 290 <= result.retry_after <= 300


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_redirects_are_permanent_and_not_followed(receiver: Receiver, status: int) -> None:
    receiver.reply("/moved", status, {"Location": receiver.url("/elsewhere")})
    channel = open_channel()
    try:
        result = await channel.send(make_message(), contact(receiver.url("/moved")))
    finally:
        await channel.aclose()
    assert result.outcome is Outcome.PERMANENT
    assert result.detail is not None and "not followed" in result.detail
    assert receiver.at("/elsewhere") == []


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(400, Outcome.PERMANENT), (404, Outcome.PERMANENT), (500, Outcome.TRANSIENT)],
)
async def test_status_classification(receiver: Receiver, status: int, outcome: Outcome) -> None:
    receiver.reply("/s", status)
    channel = open_channel()
    try:
        result = await channel.send(make_message(), contact(receiver.url("/s")))
    finally:
        await channel.aclose()
    assert result.outcome is outcome


async def test_connection_refused_is_transient() -> None:
    channel = open_channel()
    try:
        result = await channel.send(make_message(), contact(f"http://127.0.0.1:{closed_port()}/"))
    finally:
        await channel.aclose()
    assert result.outcome is Outcome.TRANSIENT


async def test_no_webhook_is_no_contact() -> None:
    channel = open_channel()
    try:
        result = await channel.send(make_message(), Contact(user_id="u1"))
    finally:
        await channel.aclose()
    assert result.outcome is Outcome.NO_CONTACT


async def test_malformed_secret_is_permanent(receiver: Receiver) -> None:
    channel = open_channel()
    try:
        result = await channel.send(make_message(), contact(receiver.url("/"), "whsec_!!!"))
    finally:
        await channel.aclose()
    assert result.outcome is Outcome.PERMANENT
    assert receiver.requests == []


def test_secret_is_redacted_and_well_formed() -> None:
    target = WebhookTarget("ep_1", "https://hooks.example.com/x?token=abc", SECRET)
    assert SECRET not in repr(target)
    assert "token=abc" not in repr(target)
    assert SECRET not in repr(Contact(user_id="u", webhook=target))
    assert SECRET.startswith("whsec_")
    Webhook(SECRET)  # the package accepts our secret format


# --- SSRF ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/hook",
        "http://[::1]:{port}/hook",
        "http://localhost:{port}/hook",
        "http://10.1.2.3/hook",
        "http://192.168.1.1/hook",
        "http://172.16.0.1/hook",
        "http://100.64.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[fe80::1]/",
        "http://224.0.0.1/",
        "http://0.0.0.0:{port}/",
        "http://2130706433:{port}/",
        "http://0x7f.1:{port}/",
        "http://0x7f000001:{port}/",
        "http://017700000001:{port}/",
        "http://127.1:{port}/",
        "http://[::ffff:127.0.0.1]:{port}/",
        "http://[::ffff:7f00:1]:{port}/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[2002:7f00:1::]/",
        "ftp://example.com/",
        "http://user:pw@example.com/",
    ],
)
async def test_guard_refuses_internal_targets(receiver: Receiver, url: str) -> None:
    channel = WebhookChannel(guard=UrlGuard(allow_private=False), timeout=2)
    try:
        result = await channel.send(make_message(), contact(url.format(port=receiver.port)))
    finally:
        await channel.aclose()
    assert result.outcome is Outcome.PERMANENT
    assert result.detail is not None and "blocked" in result.detail
    assert receiver.requests == []


def resolver_for(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> Sequence[str]:
        if host not in table:
            raise OSError(f"unknown host {host}")
        return table[host]

    return resolve


async def test_guard_refuses_a_name_with_any_internal_address() -> None:
    guard = UrlGuard(resolver=resolver_for({"rebind.test": ["93.184.216.34", "10.0.0.5"]}))
    with pytest.raises(BlockedURL, match=r"10\.0\.0\.5"):
        await guard.check("https://rebind.test/hook")


async def test_guard_accepts_public_name_and_pins_its_address() -> None:
    guard = UrlGuard(resolver=resolver_for({"hooks.test": ["93.184.216.34"]}))
    checked = await guard.check("https://hooks.test:8443/a?b=c")
    assert checked.address == "93.184.216.34"
    request = checked.pinned_request("POST", headers={}, content=b"{}")
    assert request.url.host == "93.184.216.34"
    assert request.url.port == 8443
    assert request.url.raw_path == b"/a?b=c"
    assert request.headers["host"] == "hooks.test:8443"
    assert request.extensions["sni_hostname"] == "hooks.test"


class PublicInternet:
    """Plays "the internet" for one public address by forwarding to a local port: a
    dialer for the webhook channel's connection pool.

    Any other destination is refused, so a test using it cannot leave the machine.
    """

    def __init__(self, public_ip: str, local_port: int) -> None:
        self.public_ip = public_ip
        self.local_port = local_port
        self.dialled: list[str] = []
        self.server_names: list[str | None] = []

    async def __call__(
        self,
        factory: Callable[[], asyncio.Protocol],
        address: str,
        port: int,
        ssl_context: ssl.SSLContext | None,
        server_hostname: str | None,
    ) -> tuple[asyncio.BaseTransport, asyncio.Protocol]:
        self.dialled.append(address)
        self.server_names.append(server_hostname)
        if address != self.public_ip:
            raise ConnectionRefusedError(f"test network: {address} unreachable")
        loop = asyncio.get_running_loop()
        return await loop.create_connection(factory, "127.0.0.1", self.local_port)


async def test_public_hop_redirecting_to_loopback_is_refused(receiver: Receiver) -> None:
    receiver.reply("/hook", 302, {"Location": receiver.url("/internal-admin")})
    internet = PublicInternet("93.184.216.34", receiver.port)
    guard = UrlGuard(resolver=resolver_for({"hooks.test": ["93.184.216.34"]}))
    channel = WebhookChannel(guard=guard, timeout=5, dialer=internet)
    try:
        result = await channel.send(make_message(), contact("http://hooks.test/hook"))
    finally:
        await channel.aclose()

    assert result.outcome is Outcome.PERMANENT
    assert result.detail is not None and "not followed" in result.detail
    # We dialled the checked address only, with the original Host header.
    assert internet.dialled == ["93.184.216.34"]
    [hop] = receiver.requests
    assert hop.path == "/hook"
    assert hop.headers["host"] == "hooks.test"
    Webhook(SECRET).verify(hop.body, hop.headers)
    assert receiver.at("/internal-admin") == []
