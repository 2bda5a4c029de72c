"""A real ``clarion serve`` and Debian's Chromium driven by Playwright.

The widget is embedded exactly as docs/widget.md shows (the page's HTML block), on a page
answered by Playwright at the server's own origin: the module, the REST calls and the live
connection all go to the real server. Screenshots go to build/screenshots/."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from clarion.web.assets import StaticFiles
from tests.e2e.conftest import Server, clarion_env, start_server

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "screenshots"
SECRET = "browser-tests-secret-key-0123456789abcdef"
APP_ORIGIN = "http://app.example.test"  # another origin, answered by Playwright
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# The host page is answered by Playwright (context.route), so Chromium knows no address of
# its own and counts it as public; its Local Network Access check then refuses the
# WebSocket to 127.0.0.1 (pages Clarion itself serves, like /demo, are not affected).
TEST_ARGS = [*ARGS, "--disable-features=LocalNetworkAccessChecks"]

try:
    from playwright.sync_api import Browser, BrowserContext, Page, Route, sync_playwright
except ImportError:  # pragma: no cover - make install brings it
    sync_playwright = None

pytestmark = pytest.mark.browser


def _missing() -> str | None:
    if sync_playwright is None:
        return "the playwright package is not installed (make install)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing (make browser installs Debian's chromium)"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = _missing()
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(pytest.mark.browser)
            if reason and os.environ.get("CI") != "true":  # in CI the fixtures fail instead
                item.add_marker(pytest.mark.skip(reason=reason))


def doc_html() -> str:
    """The plain-HTML embedding of docs/widget.md (its first html block), as a host page."""
    text = (ROOT / "docs" / "widget.md").read_text()
    match = re.search(r"```html\n(.*?)```", text, re.S)
    assert match, "docs/widget.md has no ```html block"
    page = match.group(1)
    # The example imports the module's hashed URL (no redirect on the way to the badge):
    # it must be this release's.
    current = StaticFiles().widget.path
    assert f'from "{current}"' in page and f'href="{current}"' in page, (
        f"docs/widget.md's page must import and modulepreload {current} (the module changed)"
    )
    return page


class Clarion:
    """The server of the session, and what tests do to it through the API."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.url = server.url
        self.http = httpx.Client(
            base_url=f"{server.url}/api/v1",
            headers={"Authorization": f"Bearer {server.key}"},
            timeout=10,
        )

    def token(self, user: str, ttl: int | None = None) -> str:
        body = {"ttl_seconds": ttl} if ttl else None
        r = self.http.post(f"/users/{user}/token", json=body)
        r.raise_for_status()
        return str(r.json()["token"])

    def send(self, user: str, **fields: Any) -> int:
        body = {"user_id": user, "type": "test", "title": "Hello", **fields}
        r = self.http.post("/notifications", json=body)
        assert r.status_code == 202, r.text
        return int(r.json()["ids"][0])

    def get(self, path: str, **params: Any) -> Any:
        r = self.http.get(path, params=params)
        r.raise_for_status()
        return r.json()


@pytest.fixture(scope="session")
def clarion(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clarion]:
    if reason := _missing():
        pytest.fail(reason) if os.environ.get("CI") == "true" else pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("browser-serve")
    env = clarion_env(
        workdir,
        CLARION_SECRET_KEY=SECRET,
        CLARION_DEMO="true",
        CLARION_CORS_ORIGINS=f'["{APP_ORIGIN}"]',
    )
    server = start_server(workdir, env)
    try:
        yield Clarion(server)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium per test module, not per session: Playwright's sync API keeps an event
    loop running in this thread while it is open, and every later test of the process
    that calls ``asyncio.run`` (most fixtures do) would fail. The suite's workers take
    whole modules (``--dist loadfile``), so it closes before another module starts."""
    assert sync_playwright is not None
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=TEST_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


class Host:
    """Pages of one browser context (one "browser": its tabs share the connection)."""

    def __init__(
        self, context: BrowserContext, clarion: Clarion, user: str, base: str | None = None
    ) -> None:
        self.context = context
        self.clarion = clarion
        self.user = user
        self.base = base or clarion.url
        self.replace: dict[str, str] = {}
        self.sockets: list[str] = []
        self.tokens_minted = 0
        self.fail_tokens = 0
        self.html = doc_html()
        self.first_token: str | None = None
        context.route(f"{self.base}/my-app/**", self._answer)

    def _answer(self, route: Route) -> None:
        path = route.request.url[len(self.base) :]
        if path.startswith("/my-app/clarion-token"):
            if self.fail_tokens > 0:  # the app's backend is failing
                self.fail_tokens -= 1
                route.fulfill(status=503, json={"error": "try later"})
                return
            self.tokens_minted += 1
            token = self.clarion.token(self.user)
            route.fulfill(json={"token": token}, headers={"Cache-Control": "no-store"})
        else:
            token = self.first_token or self.clarion.token(self.user)
            html = self.html.replace("eyJ...", token)
            for old, new in self.replace.items():
                html = html.replace(old, new)
            route.fulfill(body=html, content_type="text/html; charset=utf-8")

    def open(self, query: str = "") -> Page:
        page = self.context.new_page()
        page.on("pageerror", lambda e: print("page error:", e))
        page.on("websocket", lambda ws: self.sockets.append(ws.url))
        page.goto(f"{self.base}/my-app/page.html{query}")
        return page


@pytest.fixture
def host_factory(browser: Browser, clarion: Clarion) -> Iterator[Any]:
    contexts: list[BrowserContext] = []

    def make(user: str, base: str | None = None, **options: Any) -> Host:
        ctx = browser.new_context(**options)
        contexts.append(ctx)
        return Host(ctx, clarion, user, base)

    yield make
    for ctx in contexts:
        ctx.close()


def eventually(read: Callable[[], Any], expected: Any, timeout: float = 5.0) -> None:
    """Wait until the server answers ``expected``: the widget shows a change at once
    (optimistically), before its request has reached the server, so a check of the
    server's state right after the page shows it would race that request."""
    deadline = time.monotonic() + timeout
    while (got := read()) != expected:
        assert time.monotonic() < deadline, f"the server still answers {got!r}, not {expected!r}"
        time.sleep(0.05)


def wait_live(page: Page, timeout: float = 10000) -> None:
    """Wait until the widget's connection is live. A notification sent before that reaches
    the page through a reload of its lists, not as a new one (no toast, no announcement)."""
    page.wait_for_function(
        "() => document.querySelector('clarion-bell')?._client?.status === 'live'",
        timeout=timeout,
    )


def unique(name: str) -> str:
    return f"{name}-{time.monotonic_ns() % 10**9}"


def shot(page: Page, name: str, **options: Any) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), **options)
    return path


def open_center(page: Page) -> None:
    page.locator("clarion-bell").click()
    page.wait_for_function(
        "() => document.querySelector('clarion-bell').inbox.tabState.get('all').loaded"
    )


def items(page: Page) -> list[str]:
    """The titles of the center's rows, in order."""
    return list(
        page.evaluate(
            """() => [...document.querySelector('clarion-bell').inbox.shadowRoot
                 .querySelectorAll('#list > li > .body > .title')].map((e) => e.textContent)"""
        )
    )


def badge(page: Page) -> str:
    return str(page.locator("clarion-bell").get_attribute("data-count") or "")


def wait_badge(page: Page, value: str, timeout: float = 5000) -> None:
    page.wait_for_function(
        "v => document.querySelector('clarion-bell')?.dataset.count === v",
        arg=value,
        timeout=timeout,
    )
