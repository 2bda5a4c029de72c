"""What the widget shows and how it is used: every template kind (screenshots in light
and dark), keyboard-only use, translations and right-to-left, the demo page."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import Clarion, badge, items, open_center, shot, unique, wait_badge

AVATAR = "/static/clarion-demo-avatar.svg"
PHOTO = "/static/clarion-demo-photo.svg"

KINDS: dict[str, dict[str, Any]] = {
    "simple": {"title": "Welcome", "message": "Your account is ready."},
    "rich_media": {
        "title": "Ana posted a photo",
        "message": "Sunset at the beach",
        "media": {"image": PHOTO, "avatar": AVATAR},
    },
    "interactive": {
        "title": "Bo invited you to Design",
        "message": "Join the team?",
        "actions": [
            {"id": "accept", "label": "Accept", "action": "invite.accept:42", "style": "primary"},
            {"id": "view", "label": "View team", "url": "https://app.example.com/teams/7",
             "style": "link"},
        ],
    },
    "card": {
        "title": "Invoice paid",
        "content": {
            "header": "ACME Inc.",
            "fields": [
                {"label": "Amount", "value": "€42.50"},
                {"label": "Invoice", "value": "2024-0042"},
            ],
            "footer": "Thank you!",
        },
    },
    "list": {
        "title": "3 new tasks",
        "message": "Assigned to you today",
        "content": {
            "items": [
                {"title": "Fix login", "subtitle": "Due Friday", "url": "https://app.example.com/t/1"},
                {"title": "Review PR #12"},
                {"title": "Plan sprint"},
            ]
        },
    },
    "timeline": {
        "title": "Order #1001",
        "message": "On its way",
        "content": {
            "entries": [
                {
                    "at": "2024-05-02T10:00:00+02:00",
                    "title": "Shipped",
                    "description": "Tracking: AB123",
                },
                {"at": "2024-05-01T12:00:00Z", "title": "Ordered"},
            ]
        },
    },
}  # fmt: skip


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_template_kind_renders(clarion: Clarion, host_factory: Any, scheme: str) -> None:
    user = unique(f"kinds-{scheme}")
    ids = {
        kind: clarion.send(user, type=kind, template=kind, **body) for kind, body in KINDS.items()
    }
    host = host_factory(user, color_scheme=scheme, viewport={"width": 900, "height": 900})
    page = host.open()
    wait_badge(page, "6")
    open_center(page)
    bell = page.locator("clarion-bell")
    assert items(page) == [KINDS[k]["title"] for k in reversed(KINDS)]
    for kind, nid in ids.items():
        row = bell.locator(f"li[data-id='{nid}']")
        row.scroll_into_view_if_needed()
        row.screenshot(path=str(shot_path(f"kind-{kind}-{scheme}")))
    # What each kind adds to the title and message.
    assert bell.locator(f"li[data-id='{ids['rich_media']}'] img[part=media]").is_visible()
    assert bell.locator(f"li[data-id='{ids['rich_media']}'] img[part=avatar]").is_visible()
    link = bell.get_by_role("link", name="View team")
    assert link.get_attribute("href") == "https://app.example.com/teams/7"
    assert link.get_attribute("rel") == "noopener noreferrer"
    card = bell.locator(f"li[data-id='{ids['card']}'] [part=card]").inner_text()
    assert "ACME Inc." in card and "€42.50" in card and "Thank you!" in card
    tasks = bell.locator(f"li[data-id='{ids['list']}'] [part=list-items] li")
    assert tasks.count() == 3
    entries = bell.locator(f"li[data-id='{ids['timeline']}'] [part=timeline] li strong")
    assert entries.all_inner_texts() == ["Ordered", "Shipped"]  # oldest first
    bell.locator(".scroll").evaluate("el => el.scrollTop = 0")
    shot(page, f"center-{scheme}")
    bell.locator("[part=panel]").screenshot(path=str(shot_path(f"center-panel-{scheme}")))


def shot_path(name: str) -> Any:
    from tests.browser.conftest import SHOTS

    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS / f"{name}.png"


def test_keyboard_only_opens_navigates_reads_and_closes(
    clarion: Clarion, host_factory: Any
) -> None:
    user = unique("keys")
    for title in ("Oldest", "Middle", "Newest"):
        clarion.send(user, title=title)
    host = host_factory(user)
    host.context.add_init_script(
        "document.addEventListener('clarion-open',"
        " (e) => { window.__opened = e.detail.notification.title; })"
    )
    page = host.open()
    wait_badge(page, "3")
    kb = page.keyboard
    kb.press("Tab")
    assert page.evaluate("document.activeElement.tagName") == "CLARION-BELL"
    kb.press("Enter")
    page.wait_for_function(
        "() => document.querySelector('clarion-bell').inbox.tabState.get('all').loaded"
    )
    inbox_focus = """() => { const a = document.querySelector('clarion-bell').inbox
                       .shadowRoot.activeElement; return a && (a.dataset.tab || a.dataset.id); }"""
    page.wait_for_function(f"({inbox_focus})() === 'all'")
    button = page.locator("clarion-bell").locator("button[part=button]")
    assert button.get_attribute("aria-expanded") == "true"
    kb.press("ArrowRight")  # the next tab
    assert page.evaluate(inbox_focus) == "unread"
    kb.press("ArrowLeft")
    assert page.evaluate(inbox_focus) == "all"
    kb.press("ArrowDown")  # into the list: the newest
    first = page.evaluate(inbox_focus)
    kb.press("ArrowDown")
    second = page.evaluate(inbox_focus)
    assert first != second and second is not None
    kb.press("Space")  # toggles read
    wait_badge(page, "2")
    kb.press("Space")
    wait_badge(page, "3")
    kb.press("Enter")  # opens: read, and the host app is told
    wait_badge(page, "2")
    assert page.evaluate("window.__opened") == "Middle"
    kb.press("End")
    assert page.evaluate(inbox_focus) != second
    kb.press("Escape")
    assert button.get_attribute("aria-expanded") == "false"
    focused = page.evaluate(
        "() => document.activeElement.tagName + ':' +"
        " document.activeElement.shadowRoot.activeElement?.getAttribute('part')"
    )
    assert focused == "CLARION-BELL:button"
    assert badge(page) == "2"


@pytest.mark.parametrize(
    ("lang", "all_tab", "label"),
    [
        ("en", "All", "Notifications, 1 unread"),
        ("pt", "Todas", "Notificações, 1 por ler"),
        ("es", "Todas", "Notificaciones, 1 sin leer"),
        ("de", "Alle", "Benachrichtigungen, 1 ungelesen"),
        ("fr", "Toutes", "Notifications, 1 non lue"),
    ],
)
def test_strings_and_times_in_the_page_language(
    clarion: Clarion, host_factory: Any, lang: str, all_tab: str, label: str
) -> None:
    user = unique(f"lang-{lang}")
    clarion.send(user, title="Olá")
    host = host_factory(user)
    host.replace['lang="en"'] = f'lang="{lang}"'
    page = host.open()
    wait_badge(page, "1")
    bell = page.locator("clarion-bell")
    assert bell.locator("button[part=button]").get_attribute("aria-label") == label
    open_center(page)
    assert bell.get_by_role("tab", selected=True).inner_text() == all_tab
    now = page.evaluate(
        "l => new Intl.RelativeTimeFormat(l, {numeric: 'auto', style: 'short'})"
        ".format(0, 'second')",
        lang,
    )
    assert bell.locator("time[part=time]").inner_text() == now


def test_right_to_left(clarion: Clarion, host_factory: Any) -> None:
    user = unique("rtl")
    clarion.send(user, title="Ana posted a photo", template="rich_media", media={"avatar": AVATAR})
    host = host_factory(user)
    host.replace['lang="en"'] = 'lang="fr" dir="rtl"'
    page = host.open()
    wait_badge(page, "1")
    open_center(page)
    bell = page.locator("clarion-bell")
    panel = bell.locator("[part=panel]").bounding_box()
    width = page.viewport_size["width"] if page.viewport_size else 1280
    assert panel and panel["x"] >= 0 and panel["x"] + panel["width"] <= width
    dot = bell.locator("li.item .dot").bounding_box()
    title = bell.locator("li.item .title").bounding_box()
    assert dot and title and dot["x"] > title["x"]  # the unread dot is on the right
    page.keyboard.press("Tab")
    shot(page, "rtl-fr-light")


def test_the_demo_page_sends_each_kind_and_loads_nothing_from_elsewhere(
    clarion: Clarion, browser: Any
) -> None:
    for scheme in ("light", "dark"):
        ctx = browser.new_context(color_scheme=scheme)
        try:
            page = ctx.new_page()
            urls: list[str] = []
            page.on("request", lambda r, urls=urls: urls.append(r.url))
            page.goto(f"{clarion.url}/demo")
            page.wait_for_function("() => document.querySelector('clarion-bell')?.dataset.count")
            before = int(badge(page))
            for kind in KINDS:
                page.get_by_role("button", name=kind, exact=True).click()
                page.get_by_text(f"Sent: {kind}").wait_for()
            wait_badge(page, str(before + 6))
            open_center(page)
            shot(page, f"demo-{scheme}")
            outside = [
                u for u in urls if not u.startswith((clarion.url, "ws://127.0.0.1", "data:"))
            ]
            assert outside == []
        finally:
            ctx.close()
