"""The rows of the features' scenarios in ``bench/results/summary.md``: S8 analytics, S9
experiments, S10 widget and the dashboard (see bench/summary.py). Their targets are
latencies; the ratio beside each is to a floor measured in the same run (an authenticated
trivial GET plus the smallest query that answers, or the same browser without the widget).
"""

from __future__ import annotations

import re
from typing import Any

from bench.summary import MISSED, NOT_MEASURED, Table, fmt, g, judge, num, star, times

R = dict[str, dict[str, Any]]

_S8_LABELS = {
    "dashboard_30d": "dashboard, 30 days",
    "dashboard_24h": "dashboard, 24 hours",
    "user_metrics_30d": "user metrics, 30 days (random users)",
    "health_score": "health score (1 h, 24 h, 7 d windows; reused for 1 s)",
    "health_score_fresh": "health score, ?window=24h (computed afresh)",
    "trends_30d_by_day": "trends delivered, 30 days by day",
    "trends_24h_by_hour": "trends delivered, 24 hours by hour",
}


def verdict_of(v: Any) -> str:
    """A verdict a scenario computed itself (``met`` / ``missed`` / ``inconclusive``)."""
    verdict = g(v, "verdict")
    if verdict is None:
        return NOT_MEASURED
    return MISSED if verdict == "missed" else str(verdict)


def s8(t: Table, r: R, cal: dict[str, Any]) -> None:
    """Each analytics endpoint's p99 on both databases, the export rate and the fold rate."""
    s = r.get("s8_analytics")
    if not s:
        return
    for backend, label in (("postgres", "PostgreSQL"), ("sqlite", "SQLite")):
        b = g(s, backend)
        if not isinstance(b, dict):
            t.add("S8 analytics", f"{label}: endpoints", NOT_MEASURED, "—", NOT_MEASURED)
            continue
        n = fmt(g(b, "events"))
        http = num(g(b, "endpoints", "http_floor_unread_count", "p50_ms"))
        for key, what in _S8_LABELS.items():
            v = g(b, "verdicts", key)
            ratio, reference = "—", "—"
            over_floor = num(g(b, "ratios", key, "over_floor_p50"))
            if over_floor is not None:
                span = "30d" if "30d" in key else "24h"
                floor = num(g(b, "references", f"rollup_floor_{span}", "p50_ms"))
                raw = num(g(b, "references", f"raw_count_{span}", "p50_ms"))
                ratio = times(over_floor, "HTTP floor + one rollup query (p50)")
                reference = (
                    f"HTTP floor {fmt(http, ' ms')} + one rollup query {fmt(floor, ' ms')}; "
                    f"count(*) on events {fmt(raw, ' ms')}"
                )
            t.add(
                "S8 analytics",
                f"{label}, {n} events: {what} p99",
                ratio,
                f"<= {g(v, 'target_p99_ms')} ms",
                verdict_of(v),
                reference,
                star(fmt(num(g(v, "p99_ms")), " ms")),
            )
        v = g(b, "verdicts", "export_30d_ndjson")
        db_rate = num(g(b, "references", "copy_export_30d", "events_per_s")) or num(
            g(b, "references", "fetch_export_30d", "events_per_s")
        )
        t.add(
            "S8 analytics",
            f"{label}: export 30 days as NDJSON "
            f"({fmt(g(b, 'endpoints', 'export_30d_ndjson', 'events'))} events)",
            times(num(g(b, "ratios", "export_over_database_rate")), "the database's own read"),
            ">= 100,000/s",
            verdict_of(v),
            f"the database's own read of the rows {fmt(db_rate, '/s')}",
            star(fmt(num(g(v, "events_per_s")), " events/s")),
        )
        t.add(
            "S8 analytics",
            f"{label}: rollup follower catching up on {n} events",
            "—",
            "—",
            "—",
            "—",
            star(fmt(num(g(b, "fold", "fold_events_per_s")), " events/s")),
        )


def s9(t: Table, r: R, cal: dict[str, Any]) -> None:
    """The results endpoint's p99 with many assigned users on both databases."""
    s = r.get("s9_experiments")
    if not s:
        return
    for backend, label in (("postgres", "PostgreSQL"), ("sqlite", "SQLite")):
        b = g(s, backend)
        if not isinstance(b, dict):
            t.add("S9 experiments", f"{label}: results", NOT_MEASURED, "—", NOT_MEASURED)
            continue
        e, v = g(b, "endpoints"), g(b, "verdict")
        t.add(
            "S9 experiments",
            f"{label}, {fmt(g(b, 'assigned_users'))} assigned users: results p99",
            times(num(g(v, "results_p50_over_http_floor_p50")), "the HTTP floor (p50)"),
            f"<= {g(v, 'target_p99_ms')} ms",
            verdict_of(v),
            f"HTTP floor {fmt(num(g(e, 'http_floor_unread_count', 'p50_ms')), ' ms')}; GET "
            f"experiment {fmt(num(g(e, 'experiment_get', 'p50_ms')), ' ms')}; statistics "
            f"alone {fmt(num(g(b, 'in_process', 'statistics_only', 'p50_ms')), ' ms')}",
            star(fmt(num(g(v, "p99_ms")), " ms")),
        )


def s10_from_table(text: str) -> dict[str, Any]:
    """S10's figures from the table bench/s10_widget.py writes beside its JSON
    (results/s10_widget.md), for results that kept only the table."""
    out: dict[str, Any] = {"source": "s10_widget.md", "targets_ms": {}}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 6 or not cells[0].startswith(("page load", "bell click")):
            continue
        key, base, ratio_key, target_key = (
            ("badge_ms", "bare_page_with_count_ms", "badge_ratio_p50", "badge")
            if cells[0].startswith("page load")
            else ("open_ms", "fetch_first_page_ms", "open_ratio_p50", "open")
        )
        figure = [re.search(r"([\d.]+) ms", c) for c in (cells[1], cells[2], cells[3], cells[4])]
        p50, p90, target, baseline = (float(m.group(1)) if m else None for m in figure)
        out[key] = {"p50": p50, "p90": p90}
        out[base] = {"p50": baseline}
        out["targets_ms"][target_key] = target
        m = re.fullmatch(r"x([\d.]+)", cells[5])
        out[ratio_key] = float(m.group(1)) if m else None
    return out


def s10(t: Table, r: R, cal: dict[str, Any]) -> None:
    """The widget in Chromium: badge after a page load, rows after a click (bench/s10_widget)."""
    s = r.get("s10_widget")
    if not s:
        return
    runs = g(s, "runs")
    for key, label, base, ratio_key, ref, tgt in (
        (
            "badge_ms",
            "page load -> badge shows 20",
            "bare_page_with_count_ms",
            "badge_ratio_p50",
            "a bare page making the one unread-count request",
            num(g(s, "targets_ms", "badge")),
        ),
        (
            "open_ms",
            "bell click -> 20 rows shown",
            "fetch_first_page_ms",
            "open_ratio_p50",
            "one first-page request from the page",
            num(g(s, "targets_ms", "open")),
        ),
    ):
        m = g(s, key)
        p90 = num(g(m, "p90"))
        t.add(
            "S10 widget",
            f"{label}, Chromium{f', {runs} runs' if runs else ''}: p50 (p90), verdict on p90",
            times(num(g(s, ratio_key)), f"{ref} (p50)"),
            NOT_MEASURED if tgt is None else f"<= {tgt:g} ms",
            NOT_MEASURED if tgt is None else judge(p90, "<=", tgt),
            f"{ref} {fmt(num(g(s, base, 'p50')), ' ms')}",
            star(f"{fmt(num(g(m, 'p50')), ' ms')} ({fmt(p90, ' ms')})"),
        )


def dashboard(t: Table, r: R, cal: dict[str, Any]) -> None:
    """Each dashboard page's server time at p99 over S8's events (its Server-Timing: the
    target's measure), the whole request beside it (bench/s_dashboard.py)."""
    d = r.get("s_dashboard")
    if not d:
        return
    target = num(g(d, "target_ms")) or 200
    for page, m in (g(d, "pages") or {}).items():
        server = g(m, "server") or {}
        p99 = num(g(server, "p99_ms"))
        t.add(
            "Dashboard",
            f"{page} page, {fmt(g(d, 'events'))} events: server time p99",
            "—",
            f"<= {target:g} ms",
            judge(p99, "<=", target),
            "—",
            star(
                f"{fmt(p99, ' ms')} (server p50 {fmt(num(g(server, 'p50_ms')), ' ms')}; whole "
                f"request p50 {fmt(num(g(m, 'p50_ms')), ' ms')}, "
                f"p99 {fmt(num(g(m, 'p99_ms')), ' ms')})"
            ),
        )
