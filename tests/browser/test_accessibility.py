"""axe-core (tests/browser/vendor/axe.min.js, the npm package's file: scripts/check-axe)
finds no serious or critical violation in the widget, closed and open, light and dark,
nor on the demo page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import Clarion, open_center, unique, wait_badge
from tests.browser.test_widget_ui import KINDS

VENDOR = Path(__file__).parent / "vendor"


def axe(page: Any) -> list[dict[str, Any]]:
    page.add_script_tag(path=str(VENDOR / "axe.min.js"))
    result = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
             .map((v) => ({id: v.id, impact: v.impact, help: v.help,
                           nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' '))}))"""
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]


def test_the_vendored_axe_is_the_version_named() -> None:
    version = (VENDOR / "axe-core.version").read_text().strip()
    head = (VENDOR / "axe.min.js").read_text()[:40]
    assert head.startswith(f"/*! axe v{version}\n"), head


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_serious_violation_in_the_widget(
    clarion: Clarion, host_factory: Any, scheme: str
) -> None:
    user = unique(f"axe-{scheme}")
    for kind, body in KINDS.items():
        clarion.send(user, type=kind, template=kind, **body)
    clarion.send(user, title="Bo commented", group_key="g", data={"actor": "Bo"})
    clarion.send(user, title="Ana commented", group_key="g", data={"actor": "Ana"})
    page = host_factory(user, color_scheme=scheme).open()
    wait_badge(page, "8")
    assert axe(page) == []  # closed
    open_center(page)
    page.locator("clarion-bell").get_by_role("button", name="Ana and 1 other · Show thread").click()
    assert axe(page) == []  # open, a thread expanded


def test_no_serious_violation_on_the_demo_page(clarion: Clarion, browser: Any) -> None:
    ctx = browser.new_context(bypass_csp=True)  # the page's CSP would refuse axe's script
    try:
        page = ctx.new_page()
        page.goto(f"{clarion.url}/demo")
        page.wait_for_function("() => document.querySelector('clarion-bell')?.dataset.count")
        open_center(page)
        assert axe(page) == []
    finally:
        ctx.close()


def test_the_check_does_find_violations(clarion: Clarion, host_factory: Any) -> None:
    """A nameless button on the same page is reported: the check is really looking."""
    page = host_factory(unique("axe-broken")).open()
    wait_badge(page, "0")
    page.evaluate("document.body.append(document.createElement('button'))")
    assert "button-name" in [v["id"] for v in axe(page)]
