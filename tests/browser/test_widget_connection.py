"""The live connection under trouble: tokens expiring (renewed in place, or not in
time), the network dropping, WebSockets blocked, and a page on another origin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from clarion.services.auth import sign_token
from tests.browser.conftest import (
    APP_ORIGIN,
    SECRET,
    Clarion,
    items,
    open_center,
    shot,
    unique,
    wait_badge,
    wait_live,
)
from tests.browser.proxy import CuttableProxy


def test_the_token_expires_and_get_token_keeps_the_feed_alive(
    clarion: Clarion, host_factory: Any
) -> None:
    user = unique("renew")
    host = host_factory(user)
    now = datetime.now(UTC)
    # A real user token signed with the server's key, living 6 s (the API mints >= 60 s).
    host.first_token = sign_token(
        {"sub": user, "typ": "user", "iat": now, "exp": now + timedelta(seconds=6)}, SECRET
    )
    page = host.open()
    clarion.send(user, title="Before expiry")
    wait_badge(page, "1")
    page.wait_for_timeout(8000)  # past the first token's expiry (routes keep answering)
    assert host.tokens_minted >= 1
    clarion.send(user, title="After expiry")
    wait_badge(page, "2")
    open_center(page)  # a REST call with the renewed token
    assert items(page) == ["After expiry", "Before expiry"]
    # Renewed in place with the auth frame: the one socket never closed.
    assert len(host.sockets) == 1, host.sockets


def test_a_network_drop_shows_the_missed_notifications_once(
    clarion: Clarion, host_factory: Any
) -> None:
    user = unique("drop")
    proxy = CuttableProxy(int(clarion.url.rsplit(":", 1)[1]))
    try:
        host = host_factory(user, base=proxy.url)
        page = host.open()
        clarion.send(user, title="Before the drop")
        wait_badge(page, "1")
        open_center(page)
        proxy.cut()
        bell = page.locator("clarion-bell")
        bell.locator("[part=banner]").wait_for(state="visible", timeout=10000)
        shot(page, "offline-light")
        for i in range(3):
            clarion.send(user, title=f"Missed {i}")
        proxy.restore()
        wait_badge(page, "4", timeout=20000)
        page.wait_for_function(
            """() => document.querySelector('clarion-bell').inbox.shadowRoot
                 .querySelectorAll('#list > li').length >= 4"""
        )
        page.wait_for_timeout(500)  # any duplicate would have arrived by now
        assert items(page) == ["Missed 2", "Missed 1", "Missed 0", "Before the drop"]
        assert bell.locator("[part=banner]").is_hidden()
    finally:
        proxy.close()


def test_blocked_websockets_fall_back_to_server_sent_events(
    clarion: Clarion, host_factory: Any
) -> None:
    user = unique("sse")
    host = host_factory(user)
    host.context.route_web_socket("**/api/v1/ws**", lambda ws: ws.close())
    streams: list[str] = []
    host.context.on("request", lambda r: "/stream" in r.url and streams.append(r.url))
    page = host.open()
    page.wait_for_function("() => document.querySelector('clarion-bell')?.dataset.count === '0'")
    clarion.send(user, title="Over SSE")
    wait_badge(page, "1", timeout=15000)
    assert streams, "no EventSource was opened"
    open_center(page)
    assert items(page) == ["Over SSE"]


def test_a_page_on_another_origin_embeds_the_widget(clarion: Clarion, browser: Any) -> None:
    """The app's page is on its own origin (listed in CLARION_CORS_ORIGINS); the module,
    the REST calls and the socket go to Clarion's."""
    user = unique("cors")
    token = clarion.token(user)
    html = (
        '<!doctype html><html lang="en"><script type="module">'
        f'import {{ configure }} from "{clarion.url}/static/clarion-widget.js";'
        f'configure({{ url: "{clarion.url}", token: "{token}" }});'
        "</script><clarion-bell></clarion-bell></html>"
    )
    ctx = browser.new_context()
    try:
        ctx.route(f"{APP_ORIGIN}/**", lambda r: r.fulfill(body=html, content_type="text/html"))
        page = ctx.new_page()
        page.goto(f"{APP_ORIGIN}/page.html")
        wait_badge(page, "0")
        wait_live(page)
        clarion.send(user, title="Across origins")
        wait_badge(page, "1")
        open_center(page)
        assert items(page) == ["Across origins"]
        page.locator("clarion-bell").get_by_role("button", name="Mark as read").click()
        wait_badge(page, "0")
    finally:
        ctx.close()
    # An origin not listed gets no CORS answer: its pages cannot read the API.
    preflight = clarion.http.options(
        "/notifications",
        headers={"Origin": "http://evil.example.test", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_a_token_that_could_not_be_renewed_in_time_reconnects_from_the_cursor(
    clarion: Clarion, host_factory: Any
) -> None:
    """The renewal before expiry fails (the app's backend is down): the server closes the
    socket with 4002 at expiry; the widget gets a token then and resumes from its cursor,
    so what was sent meanwhile appears, once."""
    user = unique("expired")
    host = host_factory(user)
    now = datetime.now(UTC)
    host.first_token = sign_token(
        {"sub": user, "typ": "user", "iat": now, "exp": now + timedelta(seconds=5)}, SECRET
    )
    host.fail_tokens = 1
    clarion.send(user, title="Before")
    page = host.open()
    wait_badge(page, "1")
    open_center(page)  # the list is loaded: the widget now has a cursor
    page.wait_for_timeout(5500)  # the renewal failed; the token has expired
    clarion.send(user, title="Around expiry")
    wait_badge(page, "2", timeout=15000)
    assert host.tokens_minted >= 1
    assert len(host.sockets) == 2, host.sockets  # closed with 4002, then reopened
    assert "cursor=" in host.sockets[1]
    page.wait_for_function(
        "() => document.querySelector('clarion-bell').inbox.shadowRoot"
        ".querySelectorAll('#list > li').length === 2"
    )
    page.wait_for_timeout(300)
    assert items(page) == ["Around expiry", "Before"]


def test_an_sse_stream_ended_by_token_expiry_reopens_with_a_new_token(
    clarion: Clarion, host_factory: Any
) -> None:
    user = unique("sse-expiry")
    host = host_factory(user)
    host.context.route_web_socket("**/api/v1/ws**", lambda ws: ws.close())
    streams: list[str] = []
    host.context.on("request", lambda r: "/stream" in r.url and streams.append(r.url))
    now = datetime.now(UTC)
    host.first_token = sign_token(
        {"sub": user, "typ": "user", "iat": now, "exp": now + timedelta(seconds=6)}, SECRET
    )
    clarion.send(user, title="Before")
    page = host.open()
    wait_badge(page, "1", timeout=15000)
    open_center(page)
    page.wait_for_timeout(7000)  # the stream ended with token_expired at 6 s
    clarion.send(user, title="After")
    wait_badge(page, "2", timeout=15000)
    assert len(streams) >= 2 and "cursor=" in streams[-1], streams
    assert host.first_token not in streams[-1]  # reopened with the renewed token
    page.wait_for_timeout(300)
    assert items(page) == ["After", "Before"]
