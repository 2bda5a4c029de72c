"""The center's own work: tabs (by state and by type), mark all read, archive, delete,
optimistic changes undone when the server refuses, the empty and error states, the
inline center, toasts and preferences."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import (
    Clarion,
    eventually,
    items,
    open_center,
    shot,
    unique,
    wait_badge,
    wait_live,
)


def inbox_js(expr: str) -> str:
    return f"() => {{ const ib = document.querySelector('clarion-bell').inbox; return {expr}; }}"


def test_tabs_archive_delete_and_mark_all_read(clarion: Clarion, host_factory: Any) -> None:
    user = unique("center")
    clarion.send(user, title="Invite 1", type="invite")
    clarion.send(user, title="Order 1", type="order")
    clarion.send(user, title="Invite 2", type="invite")
    host = host_factory(user)
    host.replace["<clarion-bell>"] = '<clarion-bell type-tabs="invite:Invites">'
    page = host.open()
    wait_badge(page, "3")
    open_center(page)
    bell = page.locator("clarion-bell")
    row = bell.locator("#list > li").filter(has_text="Order 1")
    row.get_by_role("button", name="Archive").click()
    wait_badge(page, "2")  # archived notifications leave the counts
    assert items(page) == ["Invite 2", "Invite 1"]
    bell.get_by_role("tab", name="Archived").click()
    page.wait_for_function(inbox_js("ib.tabState.get('archived').loaded"))
    assert items(page) == ["Order 1"]
    bell.get_by_role("tab", name="Invites").click()
    page.wait_for_function(inbox_js("ib.tabState.get('type:invite').loaded"))
    assert items(page) == ["Invite 2", "Invite 1"]
    bell.locator("#list > li").filter(has_text="Invite 1").get_by_role(
        "button", name="Delete"
    ).click()
    wait_badge(page, "1")
    assert items(page) == ["Invite 2"]
    bell.get_by_role("tab", name="Unread (1)").click()
    page.wait_for_function(inbox_js("ib.tabState.get('unread').loaded"))
    assert items(page) == ["Invite 2"]
    bell.get_by_role("button", name="Mark all as read").click()
    wait_badge(page, "0")
    assert items(page) == []
    assert bell.locator("[part=state]").inner_text() == "You're all caught up"
    eventually(lambda: clarion.get("/notifications/unread-count", user_id=user)["unread"], 0)
    remaining = clarion.get("/notifications", user_id=user, archived="all")["items"]
    assert sorted(n["title"] for n in remaining) == ["Invite 2", "Order 1"]


def test_a_refused_change_is_undone_and_said(clarion: Clarion, host_factory: Any) -> None:
    user = unique("refused")
    nid = clarion.send(user, title="Stays unread")
    host = host_factory(user)
    host.context.add_init_script(
        "document.addEventListener('clarion-count', (e) =>"
        " (window.__counts = window.__counts || []).push(e.detail.unread));"
    )
    other = host.open()  # another tab: shown the change at once, and its undoing
    page = host.open()
    for tab in (other, page):
        wait_badge(tab, "1")
        open_center(tab)
    page.route(f"**/api/v1/notifications/{nid}/read", lambda r: r.fulfill(status=503, json={}))
    bell = page.locator("clarion-bell")
    bell.get_by_role("button", name="Mark as read").click()
    bell.get_by_text("That didn't work: try again").wait_for(state="attached")
    for tab in (page, other):
        tab.wait_for_function(inbox_js(f"ib.items.get({nid}).status === 'unread'"))
        wait_badge(tab, "1")
        assert tab.locator("clarion-bell #list > li.unread").count() == 1
        assert tab.evaluate("window.__counts").count(0) == 1  # optimistic, then undone


def test_the_error_state_offers_a_retry(clarion: Clarion, host_factory: Any) -> None:
    user = unique("error")
    clarion.send(user, title="Eventually shown")
    host = host_factory(user)
    failing = {"on": True}

    def answer(route: Any) -> None:
        if failing["on"] and "/unread-count" not in route.request.url:
            route.fulfill(status=500, json={"error": {"code": "internal", "message": "x"}})
        else:
            route.continue_()

    host.context.route("**/api/v1/notifications?**", answer)
    page = host.open()
    wait_badge(page, "1")
    page.locator("clarion-bell").click()
    bell = page.locator("clarion-bell")
    bell.get_by_role("alert").wait_for()
    assert "Couldn't load notifications" in bell.get_by_role("alert").inner_text()
    shot(page, "error-light")
    failing["on"] = False
    bell.get_by_role("button", name="Try again").click()
    page.wait_for_function(inbox_js("ib.tabState.get('all').loaded"))
    assert items(page) == ["Eventually shown"]


def test_an_inline_center_toasts_and_preferences(clarion: Clarion, host_factory: Any) -> None:
    user = unique("inline")
    host = host_factory(user)
    page = host.open()
    wait_badge(page, "0")
    wait_live(page)
    page.evaluate(
        """() => { const ib = document.createElement('clarion-inbox'); ib.id = 'center';
             ib.style.cssText = 'display:block;height:420px;max-width:480px;margin:16px';
             const prefs = document.createElement('clarion-preferences');
             document.body.append(ib, prefs); }"""
    )
    inline = page.locator("#center")
    inline.locator("[part=state]").filter(has_text="You're all caught up").wait_for()
    clarion.send(user, title="Quiet one", priority="normal")
    clarion.send(user, title="Server down", priority="urgent")
    clarion.send(user, title="Deploy done", priority="high")
    wait_badge(page, "3")
    inline.locator("#list > li").nth(2).wait_for()
    assert inline.locator("#list > li .title").all_inner_texts() == [
        "Deploy done",
        "Server down",
        "Quiet one",
    ]
    toasts = page.locator("clarion-toast")
    assert toasts.get_by_role("alert").inner_text().startswith("Server down")
    assert toasts.get_by_role("status").inner_text().startswith("Deploy done")
    assert "Quiet one" not in toasts.inner_text()
    shot(page, "inline-toasts-light")
    # Preferences: the user turns email off; the server has it.
    email = page.locator("clarion-preferences").get_by_role("checkbox", name="Email")
    assert email.is_checked()
    email.uncheck()
    page.locator("clarion-preferences").get_by_text("Saved").wait_for()
    prefs = clarion.get(f"/notifications/preferences/{user}")
    assert prefs["channels"] == {"email": False}


def test_preferences_edit_types_and_quiet_hours(clarion: Clarion, host_factory: Any) -> None:
    user = unique("prefs")
    clarion.send(user, title="Invoice 1", type="invoice")
    host = host_factory(user)
    page = host.open()
    wait_badge(page, "1")
    page.evaluate("() => document.body.append(document.createElement('clarion-preferences'))")
    prefs_el = page.locator("clarion-preferences")
    saved = prefs_el.get_by_role("status")
    # The type of the user's notification is listed; invoices go by SMS despite the default.
    sms = prefs_el.get_by_role("combobox", name="invoice: SMS")
    assert sms.input_value() == "inherit"
    sms.focus()
    sms.select_option("on")
    saved.filter(has_text="Saved").wait_for()
    email = prefs_el.get_by_role("combobox", name="invoice: Email")
    email.select_option("off")
    page.wait_for_function(
        "() => document.querySelector('clarion-preferences').shadowRoot"
        ".querySelector('[role=status]').textContent === 'Saved'"
    )
    # Quiet hours, by keyboard: the switch, then the times and the time zone.
    prefs_el.get_by_role("checkbox", name="Pause notifications at night").check()
    prefs_el.get_by_label("From").fill("21:30")
    prefs_el.get_by_label("Until").fill("06:45")
    prefs_el.get_by_label("Time zone").fill("Europe/Lisbon")
    prefs_el.get_by_label("Time zone").press("Tab")
    page.wait_for_function(
        "() => { const p = document.querySelector('clarion-preferences').shadowRoot"
        ".querySelector('[role=status]'); return p.textContent === 'Saved'; }"
    )
    expected_quiet = {"start": "21:30", "end": "06:45", "timezone": "Europe/Lisbon"}

    def stored() -> dict[str, Any]:
        return clarion.get(f"/notifications/preferences/{user}")

    deadline = 50
    doc = stored()
    while deadline and (doc.get("quiet_hours") or {}).get("timezone") != "Europe/Lisbon":
        page.wait_for_timeout(100)
        deadline -= 1
        doc = stored()
    assert doc["types"] == {"invoice": {"sms": True, "email": False}}
    assert {k: doc["quiet_hours"][k] for k in expected_quiet} == expected_quiet
    # A refused value: the server's message is shown next to the time zone.
    tz = prefs_el.get_by_label("Time zone")
    tz.fill("Mars/Olympus")
    tz.press("Tab")
    prefs_el.get_by_text("That didn't work: try again").wait_for()
    assert tz.get_attribute("aria-invalid") == "true"
    message = prefs_el.locator("[part=field-error]:not(:empty)")
    assert message.count() == 1
    assert message.inner_text().strip()
    assert stored()["quiet_hours"]["timezone"] == "Europe/Lisbon"
    shot(page, "preferences-light")


def test_a_bell_counting_unseen_marks_the_first_page_seen_on_opening(
    clarion: Clarion, host_factory: Any
) -> None:
    user = unique("unseen")
    clarion.send(user, title="One")
    clarion.send(user, title="Two")
    host = host_factory(user)
    host.replace["<clarion-bell>"] = '<clarion-bell count="unseen">'
    page = host.open()
    wait_badge(page, "2")
    open_center(page)
    wait_badge(page, "0")

    def counts() -> list[int]:
        answer = clarion.get("/notifications/unread-count", user_id=user)
        return [answer["unseen"], answer["unread"]]

    eventually(counts, [0, 2])


def test_new_notifications_are_announced_politely(clarion: Clarion, host_factory: Any) -> None:
    user = unique("announce")
    page = host_factory(user).open()
    wait_badge(page, "0")
    wait_live(page)
    clarion.send(user, title="Bo followed you")
    wait_badge(page, "1")
    region = page.locator("clarion-bell").locator(".wrap > [aria-live=polite]")
    assert region.inner_text() == "New notification: Bo followed you"


def test_quick_changes_to_one_notification_land_in_order(
    clarion: Clarion, host_factory: Any
) -> None:
    """Read then unread before the read's answer is back: the server gets them in that
    order, and the read's late answer does not show a state the user has already left."""
    user = unique("order")
    nid = clarion.send(user, title="Toggled")
    host = host_factory(user)
    # The read's answer comes back late (as over a slow link); requests are logged in the
    # order the page sends them.
    host.context.add_init_script(
        """(() => {
          const real = window.fetch.bind(window);
          window.__sent = [];
          window.__answered = 0;
          window.fetch = async (url, opts = {}) => {
            const u = String(url);
            if ((opts.method || 'GET') === 'POST') window.__sent.push(u.split('/').pop());
            const answer = await real(url, opts);
            if (u.endsWith('/NID/read')) await new Promise((r) => setTimeout(r, 600));
            if ((opts.method || 'GET') === 'POST') setTimeout(() => window.__answered++, 0);
            return answer;
          };
        })();""".replace("NID", str(nid))
    )
    page = host.open()
    wait_badge(page, "1")
    wait_live(page)
    open_center(page)
    row = page.locator("clarion-bell #list > li").filter(has_text="Toggled")
    row.get_by_role("button", name="Mark as read").click()
    row.get_by_role("button", name="Mark as unread").click()
    # Both answers are in, the read's last of all.
    page.wait_for_function("window.__answered === 2", timeout=5000)
    assert page.evaluate("window.__sent") == ["read", "unread"]
    assert page.evaluate(inbox_js(f"ib.items.get({nid}).status")) == "unread"
    wait_badge(page, "1")
    eventually(lambda: clarion.get("/notifications", user_id=user)["items"][0]["status"], "unread")


def test_a_page_asked_for_during_a_change_does_not_undo_it(
    clarion: Clarion, host_factory: Any
) -> None:
    """A tab opened while a delete and a read are still on their way to the server gets a
    page that predates them: the deleted notification stays gone, the read one stays read."""
    user = unique("stale")
    gone = clarion.send(user, title="Doomed")
    read = clarion.send(user, title="Opened")
    clarion.send(user, title="Untouched")
    host = host_factory(user)
    # The delete and the read leave the page late (as over a slow link), so the server
    # answers the tab's page first.
    host.context.add_init_script(
        """(() => {
          const real = window.fetch.bind(window);
          window.__answered = 0;
          window.fetch = async (url, opts = {}) => {
            const u = String(url);
            const held = u.endsWith('/GONE') || u.endsWith('/READ/read');
            if (held) await new Promise((r) => setTimeout(r, 800));
            const answer = await real(url, opts);
            if (held) setTimeout(() => window.__answered++, 0);
            return answer;
          };
        })();""".replace("GONE", str(gone)).replace("READ", str(read))
    )
    page = host.open()
    wait_badge(page, "3")
    open_center(page)
    bell = page.locator("clarion-bell")
    bell.locator("#list > li").filter(has_text="Doomed").get_by_role(
        "button", name="Delete"
    ).click()
    bell.locator("#list > li").filter(has_text="Opened").get_by_role(
        "button", name="Mark as read"
    ).click()
    wait_badge(page, "1")
    bell.get_by_role("tab", name="Unread (1)").click()
    page.wait_for_function(inbox_js("ib.tabState.get('unread').loaded"))
    assert page.evaluate("window.__answered") == 0  # the page came back first
    assert items(page) == ["Untouched"]
    page.wait_for_function("window.__answered === 2", timeout=5000)
    assert items(page) == ["Untouched"]
    bell.get_by_role("tab", name="All").click()
    assert items(page) == ["Untouched", "Opened"]
    wait_badge(page, "1")
    eventually(lambda: clarion.get("/notifications/unread-count", user_id=user)["unread"], 1)
