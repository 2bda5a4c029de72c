"""No URL Clarion contacts reaches an internal address, whoever set it and whatever its
scheme: a loopback "canary" (TCP and UDP, IPv4 and IPv6) counts every connection made to it
while webhook endpoints, push endpoints, Apprise targets of every scheme family, the action
webhook and the SMS base URL point at it (and at private ranges, and at names resolving to
them) in every spelling. Each attempt must end blocked, never ``delivered``, and the canary
must stay untouched.

The user-token Apprise path runs end to end through a real ``clarion serve``; the rest
runs through the services with a real worker and an injected resolver, so public-looking
names can resolve to internal addresses without touching /etc/hosts or the internet.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import selectors
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from clarion.config import Settings
from clarion.delivery.channels.apprise import AppriseChannel
from clarion.delivery.channels.base import Contact, Outcome
from clarion.delivery.channels.push import PushChannel, generate_vapid_keys
from clarion.delivery.channels.registry import ChannelRegistry
from clarion.delivery.channels.sms import SmsChannel
from clarion.delivery.channels.webhook import WebhookChannel
from clarion.delivery.worker import Worker
from clarion.errors import Forbidden, ValidationFailed
from clarion.services.actions import ActionService
from clarion.services.auth import Principal
from clarion.services.container import Services
from clarion.services.netguard import UrlGuard
from clarion.services.push_subscriptions import PushSubscriptionService
from clarion.services.users import UserService
from clarion.services.webhook_endpoints import WebhookService
from clarion.store.deliveries import for_notification
from tests.e2e.conftest import Server, clarion_env, start_server
from tests.integration.channels.conftest import make_message

# Part of the default run (make test) as well as make faults.
pytestmark = pytest.mark.faults_quick

# A browser's subscription keys (the push service never decrypts anything here).
P256DH = "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM"
AUTH = "tBHItJI5svbpez7KI4CCXg"
VAPID = generate_vapid_keys()[0]
PUBLIC = "93.184.216.34"

LOOPBACK = [
    "127.0.0.1",
    "2130706433",
    "0x7f.1",
    "017700000001",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "localhost.",
    "localhost",
]
PRIVATE = ["10.0.0.1", "172.16.0.1", "192.168.0.1", "169.254.169.254", "[fd00::1]", "[fe80::1]"]
#: Public-looking names and what the (injected) DNS answers for them.
NAMES: dict[str, list[str]] = {
    "loopback.hooks.example": ["127.0.0.1"],
    "private.hooks.example": ["10.20.30.40"],
    "metadata.hooks.example": ["169.254.169.254"],
    "ula.hooks.example": ["fd00::5"],
    "mixed.hooks.example": [PUBLIC, "127.0.0.1"],  # one internal answer is enough
}
HOSTS = LOOPBACK + PRIVATE + list(NAMES)

#: Apprise targets by scheme family; every one of them names the host it talks to.
APPRISE = [
    "json://{host}:{port}/hook?token=s3cr3t",
    "ntfy://{host}:{port}/alerts",
    "gotify://{host}:{port}/AppToken123",
    "apprise://{host}:{port}/config-key",
    "kodi://{host}:{port}",
    "mmost://{host}:{port}/webhooktoken",
    "mailto://{host}:{port}?user=u&pass=p&to=ops@mail.example&from=c@mail.example",
    "rsyslog://{host}:{port}",
]

TERMINAL = {"delivered", "dead", "suppressed", "cancelled"}


# --- the canary -------------------------------------------------------------------------


class Canary:
    """TCP and UDP on 127.0.0.1 and ::1, one port: records every connection and datagram."""

    def __init__(self) -> None:
        self.hits: list[tuple[str, Any]] = []
        self._sel = selectors.DefaultSelector()
        self._socks: list[socket.socket] = []
        for _ in range(20):
            try:
                self.port = self._open()
                break
            except OSError:  # the port was free on one family only: try another
                for s in self._socks:
                    s.close()
                self._socks.clear()
                self._sel = selectors.DefaultSelector()
        else:  # pragma: no cover
            raise RuntimeError("no port free on both 127.0.0.1 and ::1")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _open(self) -> int:
        port = 0
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                s = socket.socket(family, kind)
                self._socks.append(s)
                s.bind((host, port))
                port = s.getsockname()[1]
                if kind == socket.SOCK_STREAM:
                    s.listen(128)
                s.setblocking(False)
                self._sel.register(s, selectors.EVENT_READ)
        return port

    def _serve(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._sel.select(timeout=0.05):
                s: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    if s.type == socket.SOCK_STREAM:
                        conn, peer = s.accept()
                        conn.close()
                        self.hits.append(("tcp", peer))
                    else:
                        _data, peer = s.recvfrom(65536)
                        self.hits.append(("udp", peer))
                except BlockingIOError:
                    continue

    def url(self, path: str = "/canary") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for s in self._socks:
            s.close()


@pytest.fixture
def canary() -> Iterator[Canary]:
    c = Canary()
    try:
        yield c
    finally:
        c.close()


def test_the_canary_sees_what_reaches_it(canary: Canary) -> None:
    """Without this, "no hits" below could mean a deaf canary."""
    for host in ("127.0.0.1", "::1"):
        with socket.create_connection((host, canary.port), timeout=5):
            pass
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"x", ("127.0.0.1", canary.port))
    deadline = time.monotonic() + 5
    while len(canary.hits) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sorted(kind for kind, _ in canary.hits) == ["tcp", "tcp", "udp"]


# --- the address rules, as seen by the tests ---------------------------------------------


def async_dns(answers: dict[str, list[str]]) -> Callable[[str, int], Awaitable[Sequence[str]]]:
    async def resolve(host: str, port: int) -> Sequence[str]:
        if host not in answers:
            raise OSError(f"NXDOMAIN {host}")
        return answers[host]

    return resolve


def sync_dns(answers: dict[str, list[str]]) -> Callable[[str, int], Sequence[str]]:
    def resolve(host: str, port: int) -> Sequence[str]:
        if host not in answers:
            raise OSError(f"NXDOMAIN {host}")
        return answers[host]

    return resolve


def strict_guard() -> UrlGuard:
    """The production rules, with the test DNS."""
    return UrlGuard(resolver=async_dns(NAMES), sync_resolver=sync_dns(NAMES))


def registration_guard() -> UrlGuard:
    """How things looked when the targets were registered: private receivers allowed (the
    operator's escape hatch was on) and the names unknown. Delivery then runs strict."""
    return UrlGuard(allow_private=True, resolver=async_dns({}))


def strict_registry(guard: UrlGuard | None = None) -> ChannelRegistry:
    guard = guard or strict_guard()
    registry = ChannelRegistry()
    registry.register(WebhookChannel(guard=guard, timeout=5))
    registry.register(
        PushChannel(
            vapid_private_key=VAPID, vapid_subject="mailto:ops@example.org", guard=guard, timeout=5
        )
    )
    registry.register(AppriseChannel(guard=guard, timeout=15))
    return registry


# --- in-process services (SQLite: the database plays no part in these rules) ------------


@pytest.fixture
def db_url(sqlite_template: Path, tmp_path: Path) -> str:
    target = tmp_path / "clarion.db"
    target.write_bytes(sqlite_template.read_bytes())
    return f"sqlite+aiosqlite:///{target}"


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(
        database_url=db_url,
        secret_key="test-secret-key-" + "x" * 32,
        redis_url=None,
        embedded_worker=False,
        webhook_allow_private=False,
        webhook_timeout_seconds=5.0,
        _env_file=None,  # type: ignore[call-arg]
    )


def user_headers(services: Services, user_id: str) -> dict[str, str]:
    token, _ = services.auth.mint_user_token(user_id)
    return {"Authorization": f"Bearer {token}"}


async def send_to(authed: httpx.AsyncClient, users: list[str], channel: str) -> dict[str, int]:
    """One notification per user on ``channel``: user -> notification id."""
    r = await authed.post(
        "/api/v1/notifications",
        json={
            "user_ids": users,
            "type": "alert",
            "title": "Disk almost full",
            "channels": [channel],
        },
    )
    assert r.status_code == 202, r.text
    return dict(zip(users, r.json()["ids"], strict=True))


async def deliver(
    services: Services, registry: ChannelRegistry, nids: dict[str, int], canary: Canary
) -> dict[str, dict[str, Any]]:
    """Run a real worker until every delivery is terminal: user -> its one delivery row.
    Stops at once if anything reached the canary."""
    worker = Worker(services.deliveries, registry, batch_size=500)
    deadline = time.monotonic() + 30
    try:
        while True:
            await worker.run_until_idle(max_seconds=30)
            assert canary.hits == [], "connections reached the canary"
            rows: dict[str, dict[str, Any]] = {}
            async with services.db.connect() as conn:
                for user, nid in nids.items():
                    (row,) = await for_notification(conn, nid)
                    rows[user] = dataclasses.asdict(row)
            if all(r["status"] in TERMINAL for r in rows.values()):
                return rows
            assert time.monotonic() < deadline, rows
            await asyncio.sleep(0.05)
    finally:
        await registry.aclose()


def assert_blocked(rows: dict[str, dict[str, Any]], where: dict[str, str], word: str) -> None:
    """Every delivery dead at its first attempt, its error saying why."""
    wrong = {
        where[user]: (row["status"], row["last_error"])
        for user, row in rows.items()
        if row["status"] != "dead" or row["attempts"] != 1 or word not in (row["last_error"] or "")
    }
    assert not wrong, wrong


# --- webhook endpoints -----------------------------------------------------------------


async def test_webhook_endpoints(
    authed: httpx.AsyncClient, services: Services, settings: Settings, canary: Canary
) -> None:
    urls = {f"w{i}": f"http://{host}:{canary.port}/hook" for i, host in enumerate(HOSTS)}
    strict = WebhookService(services.db, settings, guard=strict_guard())
    for url in urls.values():
        with pytest.raises(ValidationFailed) as caught:
            await strict.create(url)
        assert caught.value.details == [{"field": "url", "problem": "private_address"}], url
    for host in LOOPBACK + PRIVATE:  # the same through the API, with its real guard
        r = await authed.post("/api/v1/webhooks", json={"url": f"http://{host}:{canary.port}/"})
        assert r.status_code == 422, (host, r.text)
    assert (await authed.get("/api/v1/webhooks")).json() == {"items": []}

    # Registered while allowed; the operator then turned private receivers off.
    lenient = WebhookService(services.db, settings, guard=registration_guard())
    for user, url in urls.items():
        await lenient.create(url, user_id=user)
    nids = await send_to(authed, list(urls), "webhook")
    rows = await deliver(services, strict_registry(), nids, canary)
    assert_blocked(rows, urls, "blocked: ")
    assert canary.hits == []


# --- web push endpoints ----------------------------------------------------------------


async def test_push_endpoints(
    authed: httpx.AsyncClient, services: Services, settings: Settings, canary: Canary
) -> None:
    urls = {f"p{i}": f"https://{host}:{canary.port}/push/abc" for i, host in enumerate(HOSTS)}
    # A browser registers with its user's own token: refused with a clear 422.
    for user, url in urls.items():
        if any(name in url for name in NAMES):
            continue  # the API's guard has the real DNS; names are checked below
        body = {"endpoint": url, "keys": {"p256dh": P256DH, "auth": AUTH}}
        r = await authed.post(
            f"/api/v1/users/{user}/push-subscriptions",
            json=body,
            headers=user_headers(services, user),
        )
        assert r.status_code == 422, (url, r.text)
        assert r.json()["error"]["details"] == [{"field": "endpoint", "problem": "private_address"}]
    strict = PushSubscriptionService(services.db, settings, guard=strict_guard())
    for user, url in urls.items():
        with pytest.raises(ValidationFailed):
            await strict.add(user, url, P256DH, AUTH)
    # A public endpoint is still welcome.
    r = await authed.post(
        "/api/v1/users/p0/push-subscriptions",
        json={"endpoint": f"https://{PUBLIC}/push/ok", "keys": {"p256dh": P256DH, "auth": AUTH}},
        headers=user_headers(services, "p0"),
    )
    assert r.status_code == 201, r.text
    r = await authed.delete(f"/api/v1/users/p0/push-subscriptions/{r.json()['id']}")
    assert r.status_code == 204

    lenient = PushSubscriptionService(services.db, settings, guard=registration_guard())
    for user, url in urls.items():
        await lenient.add(user, url, P256DH, AUTH)
    nids = await send_to(authed, list(urls), "push")
    rows = await deliver(services, strict_registry(), nids, canary)
    assert_blocked(rows, urls, "blocked: ")
    assert canary.hits == []


# --- Apprise targets -------------------------------------------------------------------


async def test_apprise_targets_of_every_scheme(
    authed: httpx.AsyncClient, services: Services, canary: Canary
) -> None:
    urls: dict[str, str] = {}
    for template in APPRISE:
        for host in HOSTS:
            urls[f"a{len(urls)}"] = template.format(host=host, port=canary.port)
    # Public-looking names that pass the check up front and resolve to loopback in the
    # thread that runs Apprise (a second DNS answer), and a service on a fixed host.
    rebound = {**{n: [PUBLIC] for n in NAMES}, "rebind.hooks.example": [PUBLIC]}
    inside = {"rebind.hooks.example": ["127.0.0.1"], "api.telegram.org": ["127.0.0.1"]}
    dial_time: dict[str, str] = {}
    for template in APPRISE:
        dial_time[f"d{len(dial_time)}"] = template.format(
            host="rebind.hooks.example", port=canary.port
        )
    dial_time["d-tgram"] = "tgram://123456789:AAHsecretBotToken/987654321"
    # An operator's URL is held to the same rules as a user's.
    operator_url = f"ntfy://127.0.0.1:{canary.port}/ops"

    for user, url in {**urls, **dial_time}.items():
        r = await authed.put(f"/api/v1/users/{user}", json={"data": {"apprise_urls": [url]}})
        assert r.status_code == 200, r.text

    nids = await send_to(authed, list(urls), "apprise")
    rows = await deliver(services, strict_registry(), nids, canary)
    assert_blocked(rows, urls, "blocked: ")

    guard = UrlGuard(resolver=async_dns(rebound), sync_resolver=sync_dns(inside))
    nids = await send_to(authed, list(dial_time), "apprise")
    rows = await deliver(services, strict_registry(guard), nids, canary)
    assert_blocked(rows, dial_time, "is not a public address")

    channel = AppriseChannel(urls=(operator_url,), guard=strict_guard(), timeout=15)
    result = await channel.send(make_message(), Contact(user_id="ops"))
    await channel.aclose()
    assert result.outcome is Outcome.PERMANENT and "blocked: " in (result.detail or "")
    assert canary.hits == []


# --- the action webhook and the SMS API (operator settings) -----------------------------


async def test_action_webhook_and_sms_base_url(
    authed: httpx.AsyncClient,
    services: Services,
    settings: Settings,
    canary: Canary,
    caplog: pytest.LogCaptureFixture,
) -> None:
    r = await authed.post(
        "/api/v1/notifications",
        json={
            "user_id": "ana",
            "type": "invite",
            "title": "Bo invited you",
            "template": "interactive",
            "actions": [{"id": "accept", "label": "Accept", "action": "invite.accept:1"}],
        },
    )
    assert r.status_code == 202, r.text
    nid = r.json()["ids"][0]
    server = Principal(kind="api_key", api_key_id="test")
    caplog.set_level(logging.WARNING, logger="clarion.actions")
    for host in HOSTS:
        url = f"http://{host}:{canary.port}/clicked"
        actions = ActionService(
            services.db,
            services.inbox,
            settings.model_copy(update={"action_webhook_url": url}),
            guard=strict_guard(),
        )
        try:
            await actions.click(server, nid, "accept")
            await actions.drain()
        finally:
            await actions.close()
    refused = [r.getMessage() for r in caplog.records if "URL refused" in r.getMessage()]
    assert len(refused) == len(HOSTS), [r.getMessage() for r in caplog.records]

    for host in HOSTS:
        sms = SmsChannel(
            base_url=f"http://{host}:{canary.port}",
            account_sid="AC1",
            auth_token="t",
            sender="+15005550006",
            guard=strict_guard(),
        )
        try:
            result = await sms.send(make_message(), Contact(user_id="u", phone="+14155550123"))
        finally:
            await sms.aclose()
        assert result.outcome is Outcome.PERMANENT, (host, result)
        assert (result.detail or "").startswith("blocked: "), (host, result)
    assert canary.hits == []


# --- redirects --------------------------------------------------------------------------


@pytest.fixture
async def redirector(canary: Canary) -> AsyncIterator[tuple[str, list[str]]]:
    """An HTTP receiver that answers every request with a redirect to the canary."""
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.Response(status=302, headers={"Location": canary.url("/after-redirect")})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = int(runner.addresses[0][1])
    try:
        yield f"127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


async def test_redirects_are_never_followed(
    authed: httpx.AsyncClient,
    services: Services,
    settings: Settings,
    canary: Canary,
    redirector: tuple[str, list[str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With private receivers allowed (the first hop is on loopback), a redirect is still
    never followed, to the canary or anywhere: it is a permanent failure."""
    at, seen = redirector
    allowed = UrlGuard(allow_private=True)
    await WebhookService(services.db, settings, guard=allowed).create(
        f"http://{at}/hook", user_id="r-webhook"
    )
    await PushSubscriptionService(services.db, settings, guard=allowed).add(
        "r-push", f"http://{at}/push", P256DH, AUTH
    )
    r = await authed.put(
        "/api/v1/users/r-apprise", json={"data": {"apprise_urls": [f"json://{at}/apprise"]}}
    )
    assert r.status_code == 200, r.text
    nids = {
        **await send_to(authed, ["r-webhook"], "webhook"),
        **await send_to(authed, ["r-push"], "push"),
        **await send_to(authed, ["r-apprise"], "apprise"),
    }
    rows = await deliver(services, strict_registry(allowed), nids, canary)
    assert_blocked(rows, {u: u for u in nids}, "not followed")

    actions = ActionService(
        services.db,
        services.inbox,
        settings.model_copy(
            update={"action_webhook_url": f"http://{at}/clicked", "webhook_allow_private": True}
        ),
    )
    r = await authed.post(
        "/api/v1/notifications",
        json={
            "user_id": "ana",
            "type": "invite",
            "title": "Bo invited you",
            "template": "interactive",
            "actions": [{"id": "accept", "label": "Accept", "action": "invite.accept:1"}],
        },
    )
    caplog.set_level(logging.WARNING, logger="clarion.actions")
    try:
        await actions.click(Principal(kind="api_key"), r.json()["ids"][0], "accept")
        await actions.drain()
    finally:
        await actions.close()
    assert any("redirect not followed" in r.getMessage() for r in caplog.records)

    sms = SmsChannel(
        base_url=f"http://{at}", account_sid="AC1", auth_token="t", sender="+1", guard=allowed
    )
    try:
        result = await sms.send(make_message(), Contact(user_id="u", phone="+14155550123"))
    finally:
        await sms.aclose()
    assert result.outcome is Outcome.PERMANENT and "not followed" in (result.detail or "")

    assert sorted(seen) == [
        "/2010-04-01/Accounts/AC1/Messages.json",
        "/apprise",
        "/clicked",
        "/hook",
        "/push",
    ]
    assert canary.hits == []


# --- who may set Apprise targets --------------------------------------------------------


async def test_only_api_keys_set_apprise_urls_unless_the_operator_allows_users(
    authed: httpx.AsyncClient, services: Services
) -> None:
    ana = user_headers(services, "ana")
    urls = ["ntfy://ntfy.sh/ana-alerts"]
    r = await authed.put("/api/v1/users/ana", json={"name": "Ana"}, headers=ana)
    assert r.status_code == 200, r.text

    r = await authed.put("/api/v1/users/ana", json={"data": {"apprise_urls": urls}}, headers=ana)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "forbidden"
    assert r.json()["error"]["details"] == [{"field": "data.apprise_urls", "problem": "forbidden"}]
    assert (await authed.get("/api/v1/users/ana")).json()["data"] == {}

    # An API key may; the user may then change the rest of data if the URLs stay as they are.
    r = await authed.put("/api/v1/users/ana", json={"data": {"apprise_urls": urls}})
    assert r.status_code == 200, r.text
    same = {"data": {"apprise_urls": urls, "theme": "dark"}}
    assert (await authed.put("/api/v1/users/ana", json=same, headers=ana)).status_code == 200
    for data in ({"theme": "light"}, {"apprise_urls": []}, {"apprise_urls": urls * 2}):
        r = await authed.put("/api/v1/users/ana", json={"data": data}, headers=ana)
        assert r.status_code == 403, (data, r.text)
    assert (await authed.get("/api/v1/users/ana")).json()["data"] == same["data"]

    # CLARION_USER_APPRISE_URLS=true: a user token sets its own (the address rules still
    # apply at every send, see above and the end-to-end test below).
    users = UserService(services.db, user_apprise_urls=True)
    profile = await users.put("ana", {"data": {"apprise_urls": []}}, caller_kind="user")
    assert profile["data"] == {"apprise_urls": []}
    strict = UserService(services.db)
    with pytest.raises(Forbidden):
        await strict.put("ana", {"data": {"apprise_urls": urls}}, caller_kind="user")


# --- end to end: a user token's Apprise targets through a real server --------------------


@pytest.fixture
def served_users_set_apprise(tmp_path: Path) -> Iterator[Server]:
    env = clarion_env(
        tmp_path,
        CLARION_USER_APPRISE_URLS="true",
        CLARION_WORKER_POLL_SECONDS="0.1",
        CLARION_SECRET_KEY="e2e-secret-key-" + "y" * 32,
    )
    server = start_server(tmp_path, env)
    try:
        yield server
    finally:
        server.stop()


def test_user_token_apprise_targets_end_to_end(
    served_users_set_apprise: Server, canary: Canary
) -> None:
    served = served_users_set_apprise
    port = canary.port
    targets = [
        # the five delivered in the original report, and json:// in every loopback spelling
        f"ntfy://127.0.0.1:{port}/alerts",
        f"gotify://127.0.0.1:{port}/AppToken123",
        f"apprise://127.0.0.1:{port}/config-key",
        f"kodi://127.0.0.1:{port}",
        f"mmost://127.0.0.1:{port}/webhooktoken",
        *(f"json://{host}:{port}/hook" for host in LOOPBACK),
        f"ntfy://169.254.169.254:{port}/alerts",
        f"mailto://localhost:{port}?user=u&pass=p&to=ops@mail.example&from=c@mail.example",
    ]
    users = {f"e{i}": url for i, url in enumerate(targets)}
    key = {"Authorization": f"Bearer {served.key}"}
    with httpx.Client(base_url=served.url, timeout=10) as c:
        for user, url in users.items():
            r = c.post(f"/api/v1/users/{user}/token", headers=key)
            assert r.status_code == 200, r.text
            mine = {"Authorization": f"Bearer {r.json()['token']}"}
            r = c.put(f"/api/v1/users/{user}", json={"data": {"apprise_urls": [url]}}, headers=mine)
            assert r.status_code == 200, r.text
            if user == "e0":  # and a push endpoint from the same browser: refused
                body = {
                    "endpoint": f"https://127.0.0.1:{port}/push",
                    "keys": {"p256dh": P256DH, "auth": AUTH},
                }
                r = c.post(f"/api/v1/users/{user}/push-subscriptions", json=body, headers=mine)
                assert r.status_code == 422, r.text
        r = c.post(
            "/api/v1/notifications",
            json={"user_ids": list(users), "type": "alert", "title": "x", "channels": ["apprise"]},
            headers=key,
        )
        assert r.status_code == 202, r.text
        nids = dict(zip(users, r.json()["ids"], strict=True))

        found: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + 30
        while len(found) < len(nids) and time.monotonic() < deadline:
            for user, nid in nids.items():
                if user in found:
                    continue
                r = c.get(f"/api/v1/notifications/{nid}/deliveries", headers=key)
                assert r.status_code == 200, r.text
                (d,) = r.json()["deliveries"]
                if d["status"] in TERMINAL:
                    found[user] = d
            assert canary.hits == [], "connections reached the canary"
            time.sleep(0.1)
    wrong = {
        users[u]: (d["status"], [a["error"] for a in d["attempts"]])
        for u, d in found.items()
        if d["status"] != "dead" or "blocked: " not in (d["attempts"][-1]["error"] or "")
    }
    assert len(found) == len(nids) and not wrong, (found.keys(), wrong)
    assert canary.hits == []
