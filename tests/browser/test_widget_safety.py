"""Notification fields crafted to inject markup or script are shown as text; links and
images only with http(s) URLs."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import Clarion, open_center, shot, unique, wait_badge

ATTACKS = {
    "title": "<img src=x onerror=\"window.__pwned='title'\">",
    "message": "<script>window.__pwned='message'</script><b>bold?</b>",
}


def test_injection_attempts_render_as_text(clarion: Clarion, host_factory: Any) -> None:
    user = unique("xss")
    clarion.send(user, **ATTACKS, group_key="g", data={"actor": "<svg onload=window.__pwned=1>"})
    clarion.send(user, title="x", group_key="g", data={"actor": "<b>Bo</b>"})
    clarion.send(
        user,
        template="interactive",
        title="<iframe src=javascript:window.__pwned=2>",
        actions=[
            {"id": "a", "label": "<img src=x onerror=window.__pwned=3>", "action": "x"},
            {
                "id": "b",
                "label": "go",
                "url": 'https://example.com/"><script>window.__pwned=4</script>',
            },
        ],
    )
    clarion.send(
        user,
        template="card",
        title="card",
        content={
            "fields": [{"label": "<u>l</u>", "value": "<img src=x onerror=window.__pwned=5>"}],
            "header": "<style>*{display:none}</style>",
        },
    )
    clarion.send(
        user,
        template="list",
        title="list",
        content={"items": [{"title": "<a href=javascript:alert(1)>t</a>", "subtitle": "<i>s</i>"}]},
    )
    # The API refuses script URLs outright; the widget drops them too if one ever arrives.
    refused = clarion.http.post(
        "/notifications",
        json={
            "user_id": user,
            "type": "t",
            "title": "t",
            "template": "rich_media",
            "media": {"image": "javascript:window.__pwned=6"},
        },
    )
    assert refused.status_code == 422
    host = host_factory(user)
    dialogs: list[str] = []
    page = host.open()
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    wait_badge(page, "5")
    open_center(page)
    bell = page.locator("clarion-bell")
    bell.get_by_role("button", name="<b>Bo</b> and 1 other · Show thread").click()
    page.wait_for_timeout(300)
    text = bell.locator("[part=center]").inner_text()
    for attack in (
        *ATTACKS.values(),
        "<iframe src=javascript:window.__pwned=2>",
        "<u>l</u>",
        "<style>*{display:none}</style>",
        "<a href=javascript:alert(1)>t</a>",
    ):
        assert attack.replace("\n", " ") in text, attack
    assert page.evaluate("window.__pwned") is None
    assert dialogs == []
    elements = page.evaluate(
        """() => { const root = document.querySelector('clarion-bell').inbox.shadowRoot;
             return [...root.querySelectorAll('script,iframe,style,svg,b,u,i,a')]
               .map((e) => e.tagName + ' ' + (e.getAttribute('href') || '')); }"""
    )
    assert elements == ["A https://example.com/%22%3E%3Cscript%3Ewindow.__pwned=4%3C/script%3E"]
    safe = page.evaluate(
        """async () => { const m = await import('/static/clarion-widget.js');
             return ['javascript:alert(1)', 'data:text/html,x', ' jAvAsCrIpT:1', '//evil.example/a',
                     '/a.png', 'https://x.example/y'].map(m.safeUrl); }"""
    )
    base = host.base
    assert safe == [
        None,
        None,
        None,
        "http://evil.example/a",
        f"{base}/a.png",
        "https://x.example/y",
    ]
    shot(page, "injection-light")
