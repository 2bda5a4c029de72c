"""The widget against a real server: badge, tabs sharing one connection, actions,
token renewal, a network drop, timings."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import Clarion, badge, shot, unique, wait_badge

TIMING = """
document.addEventListener("clarion-count", (e) => {
  if (window.__badgeAt === undefined && e.detail.unread > 0) window.__badgeAt = performance.now();
});
document.addEventListener("clarion-loaded", (e) => {
  window.__loaded = window.__loaded || [];
  window.__loaded.push([performance.now(), e.detail.tab, e.detail.count]);
});
"""


def test_a_notification_sent_through_the_api_appears_with_badge_1(
    clarion: Clarion, host_factory: Any
) -> None:
    user = unique("badge")
    host = host_factory(user)
    page = host.open()
    wait_badge(page, "0")
    clarion.send(user, title="Bo followed you", message="Say hi!")
    wait_badge(page, "1")
    label = page.locator("clarion-bell").evaluate(
        "el => el.shadowRoot.querySelector('button').getAttribute('aria-label')"
    )
    assert label == "Notifications, 1 unread"
    page.locator("clarion-bell").click()
    item = page.locator("clarion-bell li.item").first
    item.wait_for()
    assert "Bo followed you" in item.inner_text()
    shot(page, "bell-open-light")
    assert badge(page) == "1"
