"""S10 widget: how soon the in-app widget shows its badge after a page load, and its first
page after the bell is clicked, in Chromium against a real ``clarion serve`` (SQLite, one
process), as ratios to what the same browser does without the widget (issue 15, "Speed").

The user has 20 unread notifications. Every run is a fresh browser context (nothing
cached), and every page is answered by Playwright at the server's origin, the same way for
both measures and their baselines:

- *badge*: the page of docs/widget.md (its first html block: the hashed module URL with
  modulepreload, ``configure``, a ``<clarion-bell>``), from navigation start to the bell's
  ``clarion-count`` event showing 20. Baseline: a bare page whose inline script makes the
  one authenticated ``GET /notifications/unread-count`` and reads its JSON.
- *open*: on that page once the badge shows, from the click on the bell to the first frame
  showing the 20 rows (the widget has fetched the first page while idle, its default).
  Baseline: the same page fetching the first page (``GET /notifications?limit=20``) and
  reading its JSON.

Targets: badge <= 300 ms, open <= 100 ms on localhost.

    PYTHONPATH=$PWD .venv/bin/python bench/run.py --only s10 [--quick]
"""

from __future__ import annotations

import os
import re
import statistics
import tempfile
from pathlib import Path
from typing import Any

import httpx

from bench.common import RESULTS, ROOT, Procs, clarion_env, ratio, start_clarion

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    # The pages are answered by Playwright: Chromium counts them as public and would
    # refuse the WebSocket to 127.0.0.1 (docs: tests/browser/conftest.py).
    "--disable-features=LocalNetworkAccessChecks",
]
TARGET_BADGE_MS = 300
TARGET_OPEN_MS = 100
ROWS = 20

RECORD = """
document.addEventListener("clarion-count", (e) => {
  if (window.__badgeAt === undefined && e.detail.unread >= 20) window.__badgeAt = performance.now();
});
"""
BARE = """<!doctype html><html lang="en"><meta charset="utf-8"><title>bare</title>
<script type="module">
const res = await fetch("/api/v1/notifications/unread-count",
  { headers: { Authorization: "Bearer TOKEN" } });
await res.json();
window.__badgeAt = performance.now();
</script></html>"""
OPEN = """() => new Promise((done) => {
  const bell = document.querySelector('clarion-bell');
  const t0 = performance.now();
  bell.shadowRoot.querySelector('button').click();
  const tick = () => {
    const shown = !bell.shadowRoot.querySelector('[part=panel]').hidden;
    const rows = bell.inbox.shadowRoot.querySelectorAll('#list > li').length;
    if (shown && rows >= 20) done(performance.now() - t0);
    else requestAnimationFrame(tick);
  };
  tick(); })"""
FETCH_PAGE = """async (token) => {
  const t0 = performance.now();
  const res = await fetch("/api/v1/notifications?limit=20",
    { headers: { Authorization: "Bearer " + token } });
  await res.json();
  return performance.now() - t0; }"""


def spread(values: list[float]) -> dict[str, float | None]:
    """p50 and p90 (nearest rank), min and max, in milliseconds."""
    if not values:
        return {"p50": None, "p90": None, "min": None, "max": None}
    s = sorted(values)
    p90 = s[min(len(s) - 1, max(0, int(0.9 * len(s) + 0.5) - 1))]
    return {
        "p50": round(statistics.median(s), 1),
        "p90": round(p90, 1),
        "min": round(s[0], 1),
        "max": round(s[-1], 1),
    }


def answer(body: str) -> Any:
    """A Playwright route handler answering every request with the page ``body``."""

    def fulfill(route: Any, request: Any) -> None:
        route.fulfill(body=body, content_type="text/html; charset=utf-8")

    return fulfill


def doc_page() -> str:
    text = (ROOT / "docs" / "widget.md").read_text()
    match = re.search(r"```html\n(.*?)```", text, re.S)
    assert match, "docs/widget.md has no ```html block"
    return match.group(1)


def run(procs: Procs, quick: bool, profile: bool) -> dict[str, Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        raise RuntimeError("S10 needs the playwright package (make install)") from e
    if not os.access(CHROMIUM, os.X_OK):
        raise RuntimeError(f"S10 needs {CHROMIUM} (make browser)")
    n = 5 if quick else 20
    with tempfile.TemporaryDirectory(prefix="clarion-s10-") as tmp:
        env = clarion_env(
            f"sqlite+aiosqlite:///{Path(tmp) / 'clarion.db'}", redis=False, CLARION_DEMO="false"
        )
        server = start_clarion(procs, env, log_name="s10")
        api = httpx.Client(
            base_url=f"{server.url}/api/v1",
            headers={"Authorization": f"Bearer {server.key}"},
            timeout=30,
        )
        user = "s10-user"
        for i in range(ROWS):
            r = api.post(
                "/notifications", json={"user_id": user, "type": "bench", "title": f"N{i}"}
            )
            r.raise_for_status()
        token = str(api.post(f"/users/{user}/token").json()["token"])
        pages = {
            "/bench/widget.html": doc_page().replace("eyJ...", token),
            "/bench/bare.html": BARE.replace("TOKEN", token),
        }
        raw: dict[str, list[float]] = {"badge": [], "bare": [], "open": [], "fetch_page": []}
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                for i in range(n + 1):  # the first of each is a warm-up, not counted
                    for name in ("/bench/bare.html", "/bench/widget.html"):
                        ctx = browser.new_context()
                        ctx.add_init_script(RECORD)
                        ctx.route(f"{server.url}/bench/**", answer(pages[name]))
                        page = ctx.new_page()
                        page.goto(f"{server.url}{name}")
                        page.wait_for_function("window.__badgeAt !== undefined", timeout=10000)
                        badge = float(page.evaluate("window.__badgeAt"))
                        if name.endswith("bare.html"):
                            fetch_ms = float(page.evaluate(FETCH_PAGE, token))
                            if i:
                                raw["bare"].append(badge)
                                raw["fetch_page"].append(fetch_ms)
                        else:
                            # The first page is fetched while the page is idle.
                            page.wait_for_function(
                                "document.querySelector('clarion-bell').inbox"
                                ".tabState.get('all').loaded",
                                timeout=10000,
                            )
                            open_ms = float(page.evaluate(OPEN))
                            if i:
                                raw["badge"].append(badge)
                                raw["open"].append(open_ms)
                        ctx.close()
            finally:
                browser.close()
        api.close()
        procs.stop(server.proc)
    stats = {k: spread(v) for k, v in raw.items()}
    p50 = {k: stats[k]["p50"] for k in stats}
    result: dict[str, Any] = {
        "runs": n,
        "badge_ms": stats["badge"],
        "bare_page_with_count_ms": stats["bare"],
        "open_ms": stats["open"],
        "fetch_first_page_ms": stats["fetch_page"],
        "badge_ratio_p50": ratio(p50["badge"], p50["bare"], 2),
        "open_ratio_p50": ratio(p50["open"], p50["fetch_page"], 2),
        "targets_ms": {"badge": TARGET_BADGE_MS, "open": TARGET_OPEN_MS},
        "raw_ms": {k: [round(x, 1) for x in v] for k, v in raw.items()},
    }
    write_table(result)
    return result


def write_table(r: dict[str, Any]) -> None:
    def fmt(v: float | None) -> str:
        return "—" if v is None else f"{v:.1f} ms"

    badge, open_ = r["badge_ms"], r["open_ms"]
    lines = [
        "| measure | p50 | p90 | target | baseline p50 (same browser, same run) | ratio |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| page load -> badge shows 20 | {fmt(badge['p50'])} | {fmt(badge['p90'])} | "
        f"<= {TARGET_BADGE_MS} ms | bare page + one unread-count fetch "
        f"{fmt(r['bare_page_with_count_ms']['p50'])} | x{r['badge_ratio_p50']} |",
        f"| bell click -> 20 rows shown | {fmt(open_['p50'])} | {fmt(open_['p90'])} | "
        f"<= {TARGET_OPEN_MS} ms | one first-page fetch "
        f"{fmt(r['fetch_first_page_ms']['p50'])} | x{r['open_ratio_p50']} |",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "s10_widget.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)
