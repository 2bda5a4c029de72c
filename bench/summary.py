"""``bench/results/summary.md``: one Markdown table of every scenario's figure against its
target, with its ratio to this machine's ceiling and to the peer measured in the same run."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bench.common import RESULTS, ratio


def _load(name: str) -> dict[str, Any]:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _g(d: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        v = f"{v:,.1f}" if abs(v) >= 10 else f"{v:,.2f}"
    elif isinstance(v, int):
        v = f"{v:,}"
    return f"{v}{unit}"


def _verdict(value: Any, target: float, higher_is_better: bool) -> str:
    if value is None:
        return "not measured"
    ok = value >= target if higher_is_better else value <= target
    return "met" if ok else "**missed**"


def write_summary(mode: str, commit: str) -> str:
    cal = _load("calibration")
    s1, s2, s3, s4, s5, s6 = (
        _load(n)
        for n in (
            "s1_ingest",
            "s2_latency",
            "s3_fanout",
            "s4_connections",
            "s5_inbox",
            "s6_workers",
        )
    )
    pg_tps = _g(cal, "pgbench", "tps")
    hello = _g(cal, "starlette", "ok_per_s")
    publish = _g(cal, "redis", "publish_per_s")
    rows: list[tuple[str, str, Any, str, str, str, str]] = []

    def row(
        scen: str,
        what: str,
        value: Any,
        unit: str,
        target: str,
        verdict: str,
        ceiling: str = "—",
        peer: str = "—",
    ) -> None:
        rows.append((scen, what, _fmt(value, unit), target, verdict, ceiling, peer))

    v = _g(s1, "postgres", "ok_per_s")
    row(
        "S1 ingest",
        "POST /notifications, PostgreSQL",
        v,
        "/s",
        ">= 3,000/s",
        _verdict(v, 3000, True),
        f"{_fmt(ratio(v, pg_tps))} of pgbench -N, {_fmt(ratio(v, hello))} of bare Starlette",
    )
    v = _g(s1, "postgres", "p99_ms")
    row(
        "S1 ingest", "p99 at that load (32 in flight)", v, " ms", "<= 25 ms", _verdict(v, 25, False)
    )
    v = _g(s1, "postgres_2_processes", "ok_per_s")
    row(
        "S1 ingest",
        "POST /notifications, PostgreSQL, serve --workers 2",
        v,
        "/s",
        ">= 3,000/s",
        _verdict(v, 3000, True),
        f"{_fmt(ratio(v, pg_tps))} of pgbench -N",
    )
    v = _g(s1, "sqlite", "ok_per_s")
    row(
        "S1 ingest",
        "POST /notifications, SQLite",
        v,
        "/s",
        ">= 1,500/s",
        _verdict(v, 1500, True),
        f"{_fmt(ratio(v, hello))} of bare Starlette",
    )
    v = _g(s1, "bulk_postgres", "notifications_per_s")
    row(
        "S1 ingest",
        "bulk user_ids of 1,000, PostgreSQL",
        v,
        " notif/s",
        ">= 50,000/s",
        _verdict(v, 50000, True),
    )

    for key, label, tgt in (("p50_ms", "p50", 5), ("p99_ms", "p99", 25)):
        v = _g(s2, "clarion", key)
        peer = _g(s2, "socketio", key)
        row(
            "S2 live latency",
            f"commit -> receipt {label}, 500 sends/s, {_fmt(_g(s2, 'connected_users'))} users",
            v,
            " ms",
            f"<= {tgt} ms",
            _verdict(v, tgt, False),
            "—",
            f"socket.io {_fmt(peer, ' ms')} (x{_fmt(ratio(v, peer, 2))})",
        )
    v = _g(s2, "clarion", "send_rate_achieved_per_s")
    row(
        "S2 live latency",
        "send rate achieved (asked 500/s)",
        v,
        "/s",
        "500/s",
        _verdict(v, 475, True),
    )

    n3 = _fmt(_g(s3, "connected_users"))
    v = _g(s3, "clarion", "server_cpu_us_per_delivery_fanout_only")
    peer = _g(s3, "socketio", "server_cpu_us_per_delivery")
    row(
        "S3 fan-out",
        f"server CPU per delivery (fan-out only), {n3} users",
        v,
        " µs",
        "<= 25 µs",
        _verdict(v, 25, False),
        "—",
        f"socket.io {_fmt(peer, ' µs')} (peer/Clarion x{_fmt(ratio(peer, v, 2))}, target >= 2)",
    )
    v = _g(s3, "clarion", "server_cpu_us_per_delivery")
    row("S3 fan-out", "server CPU per delivery incl. the 10 sends", v, " µs", "—", "—")
    for key, label, tgt in (
        ("last_receipt_p50_ms", "p50", 400),
        ("last_receipt_p99_ms", "p99", 1000),
    ):
        v = _g(s3, "clarion", key)
        peer = _g(s3, "socketio", key)
        row(
            "S3 fan-out",
            f"last receipt {label}",
            v,
            " ms",
            f"<= {tgt:,} ms",
            _verdict(v, tgt, False),
            "—",
            f"socket.io {_fmt(peer, ' ms')}",
        )
    v = _g(s3, "clarion", "api_probe_during_broadcasts", "p99_ms")
    row("S3 fan-out", "API p99 during broadcasts", v, " ms", "<= 50 ms", _verdict(v, 50, False))

    v = _g(s4, "open_after_hold")
    row(
        "S4 connections",
        "idle authenticated WebSockets held (2 serve processes)",
        v,
        "",
        ">= 20,000",
        _verdict(v, 20000, True),
    )
    v = _g(s4, "rss_kib_per_connection")
    row(
        "S4 connections",
        "server RSS per connection",
        v,
        " KiB",
        "<= 20 KiB",
        _verdict(v, 20, False),
    )

    n5 = _fmt(_g(s5, "notifications"))
    for key, label, tgt in (
        ("unread_count", "unread count p99", 2),
        ("unread_count_heavy", "unread count p99, heavy user", 2),
        ("first_page", "first page p99", 10),
        ("first_page_heavy", "first page p99, heavy user", 10),
    ):
        v = _g(s5, "clarion", "latency_alone", key, "p99_ms")
        peer = _g(s5, "django", "latency_alone", key, "p99_ms")
        row(
            "S5 inbox",
            f"{label} ({n5} rows)",
            v,
            " ms",
            f"<= {tgt} ms",
            _verdict(v, tgt, False),
            "—",
            f"django-notifications {_fmt(peer, ' ms')} (x{_fmt(ratio(peer, v, 1))} faster)",
        )
    v = _g(s5, "clarion", "mark_all_read_heavy_first", "ms")
    peer = _g(s5, "django", "mark_all_read_heavy_first", "ms")
    row(
        "S5 inbox",
        "first mark-all-read, heavy user",
        v,
        " ms",
        "<= 20 ms",
        _verdict(v, 20, False),
        "—",
        f"django-notifications {_fmt(peer, ' ms')}",
    )
    v = _g(s5, "clarion", "reads_per_s")
    peer = _g(s5, "django", "reads_per_s")
    row(
        "S5 inbox",
        "reads/s (count + first page, 32 in flight)",
        v,
        "/s",
        ">= 3,000/s",
        _verdict(v, 3000, True),
        f"{_fmt(ratio(v, hello))} of bare Starlette",
        f"django-notifications {_fmt(peer, '/s')} (x{_fmt(ratio(v, peer, 2))}, target >= 5)",
    )

    v = _g(s6, "deliveries_per_second")
    row(
        "S6 workers",
        f"webhook deliveries/s ({_fmt(_g(s6, 'deliveries'))})",
        v,
        "/s",
        ">= 3,000/s",
        _verdict(v, 3000, True),
        f"{_fmt(_g(s6, 'ratio_to_raw'))} of raw signed POSTs "
        f"({_fmt(_g(s6, 'raw_signed_posts_per_second_no_db'), '/s')})",
    )
    v = _g(s6, "projected_seconds_for_100000")
    row(
        "S6 workers",
        "100,000 deliveries drained (projected from the rate; excludes writing the send)",
        v,
        " s",
        "<= 60 s, 0 lost",
        "projected, not measured",  # bench/worker_throughput.py --deliveries 100000
    )
    s7 = _load("s7_digests")
    v = _g(s7, "projected_seconds_for_1m")
    row(
        "S7 digests",
        f"1,000,000 batch items folded (measured {_fmt(_g(s7, 'items'))} items)",
        v,
        " s",
        "<= 30 s",
        _verdict(v, 30, False),
    )

    _s8_rows(row)
    _s9_rows(row)
    _dashboard_rows(row)

    head = (
        f"# Clarion bench — {mode} run\n\n"
        f"commit `{commit[:12]}`, {datetime.now(UTC).isoformat(timespec='minutes')}, "
        f"2 cores, everything on one machine.\n\n"
        f"Ceilings measured in the same run: pgbench -N (8 clients) "
        f"{_fmt(pg_tps, ' TPS')}; bare Starlette JSON (1 uvicorn process) "
        f"{_fmt(hello, ' req/s')}; Redis PUBLISH {_fmt(publish, '/s')}, "
        f"INCR {_fmt(_g(cal, 'redis', 'incr_per_s'), '/s')}.\n\n"
        "| scenario | measure | Clarion | target | verdict | vs ceiling | vs peer |\n"
        "| --- | --- | --- | --- | --- | --- | --- |\n"
    )
    body = "\n".join("| " + " | ".join(str(c) for c in r) + " |" for r in rows)
    text = head + body + "\n"
    (RESULTS / "summary.md").write_text(text)
    return text


_S8_LABELS = {
    "dashboard_30d": "dashboard, 30 days",
    "dashboard_24h": "dashboard, 24 hours",
    "user_metrics_30d": "user metrics, 30 days (random users)",
    "health_score": "health score (1 h, 24 h, 7 d windows; reused for 1 s)",
    "health_score_fresh": "health score, ?window=24h (computed afresh)",
    "trends_30d_by_day": "trends delivered, 30 days by day",
    "trends_24h_by_hour": "trends delivered, 24 hours by hour",
}


def _s8_rows(row: Any) -> None:
    """S8 analytics (bench/s8_analytics.py): each endpoint's p99 on both databases, the
    export rate, the fold rate, and what keeping the rollups costs S1 ingest."""
    s8 = _load("s8_analytics")
    if not s8:
        return
    for backend, label in (("postgres", "PostgreSQL"), ("sqlite", "SQLite")):
        b = _g(s8, backend)
        if not isinstance(b, dict):
            row("S8 analytics", f"{label}: not measured", None, "", "—", "not measured")
            continue
        n = _fmt(_g(b, "events"))
        http = _g(b, "endpoints", "http_floor_unread_count", "p50_ms")
        for key, what in _S8_LABELS.items():
            v = _g(b, "verdicts", key)
            ceiling = "—"
            over = _g(b, "ratios", key, "over_floor_p50")
            if over is not None:
                span = "30d" if "30d" in key else "24h"
                floor = _g(b, "references", f"rollup_floor_{span}", "p50_ms")
                raw = _g(b, "references", f"raw_count_{span}", "p50_ms")
                ceiling = (
                    f"p50 x{_fmt(over)} of HTTP floor {_fmt(http, ' ms')} + one rollup "
                    f"query {_fmt(floor, ' ms')}; count(*) on events {_fmt(raw, ' ms')}"
                )
            row(
                "S8 analytics",
                f"{label}, {n} events: {what} p99",
                _g(v, "p99_ms"),
                " ms",
                f"<= {_g(v, 'target_p99_ms')} ms",
                _verdict_of(v),
                ceiling,
            )
        v = _g(b, "verdicts", "export_30d_ndjson")
        db_rate = _g(b, "references", "copy_export_30d", "events_per_s") or _g(
            b, "references", "fetch_export_30d", "events_per_s"
        )
        exported = _g(b, "endpoints", "export_30d_ndjson", "events")
        row(
            "S8 analytics",
            f"{label}: export 30 days as NDJSON ({_fmt(exported)} events)",
            _g(v, "events_per_s"),
            " events/s",
            ">= 100,000/s",
            _verdict_of(v),
            f"{_fmt(_g(b, 'ratios', 'export_over_database_rate'))} of the database's own "
            f"read of the rows ({_fmt(db_rate, '/s')})",
        )
        row(
            "S8 analytics",
            f"{label}: rollup follower catching up on {n} events",
            _g(b, "fold", "fold_events_per_s"),
            " events/s",
            "—",
            "—",
        )
    c = _g(s8, "s1_rollup_cost")
    if isinstance(c, dict):
        cost = _g(c, "cost_fraction")
        cpu = _g(c, "cpu_cost_fraction")
        row(
            "S8 analytics",
            "S1 ingest (PostgreSQL, 1 process): throughput lost with rollups on",
            None if cost is None else round(100 * cost, 1),
            " %",
            "<= 5 %",
            str(_g(c, "verdict")),
            f"on {_fmt(_g(c, 'rollups_on_per_s'), '/s')}, "
            f"off {_fmt(_g(c, 'rollups_off_per_s'), '/s')}; "
            f"on/off per pair {', '.join(_fmt(p) for p in _g(c, 'on_over_off_per_pair') or [])}; "
            f"server CPU per send {'+' if (cpu or 0) >= 0 else ''}"
            f"{_fmt(None if cpu is None else round(100 * cpu, 1), ' %')}",
        )


def _s9_rows(row: Any) -> None:
    """S9 experiments (bench/s9_experiments.py): what a running experiment costs S1 ingest,
    and the results endpoint's p99 with many assigned users on both databases."""
    s9 = _load("s9_experiments")
    if not s9:
        return
    c = _g(s9, "s1_assignment_cost")
    if isinstance(c, dict):
        cost = _g(c, "cost_fraction")
        cpu = _g(c, "cpu_cost_fraction")
        row(
            "S9 experiments",
            "S1 ingest (PostgreSQL, 1 process): throughput lost with an experiment on the type",
            None if cost is None else round(100 * cost, 1),
            " %",
            "<= 3 %",
            str(_g(c, "verdict")),
            f"on {_fmt(_g(c, 'on_per_s'), '/s')}, off {_fmt(_g(c, 'off_per_s'), '/s')}; "
            f"on/off per pair {', '.join(_fmt(p) for p in _g(c, 'on_over_off_per_pair') or [])}; "
            f"server CPU per send {'+' if (cpu or 0) >= 0 else ''}"
            f"{_fmt(None if cpu is None else round(100 * cpu, 1), ' %')}",
        )
    else:
        row("S9 experiments", "assignment cost: not measured", None, "", "—", "not measured")
    for backend, label in (("postgres", "PostgreSQL"), ("sqlite", "SQLite")):
        b = _g(s9, backend)
        if not isinstance(b, dict):
            row("S9 experiments", f"{label}: not measured", None, "", "—", "not measured")
            continue
        e = _g(b, "endpoints")
        row(
            "S9 experiments",
            f"{label}, {_fmt(_g(b, 'assigned_users'))} assigned users: results p99",
            _g(b, "verdict", "p99_ms"),
            " ms",
            f"<= {_g(b, 'verdict', 'target_p99_ms')} ms",
            _verdict_of(_g(b, "verdict")),
            f"p50 {_fmt(_g(e, 'results', 'p50_ms'), ' ms')} = "
            f"x{_fmt(_g(b, 'verdict', 'results_p50_over_http_floor_p50'))} of the HTTP floor "
            f"{_fmt(_g(e, 'http_floor_unread_count', 'p50_ms'), ' ms')}; GET experiment "
            f"{_fmt(_g(e, 'experiment_get', 'p50_ms'), ' ms')}; statistics alone "
            f"{_fmt(_g(b, 'in_process', 'statistics_only', 'p50_ms'), ' ms')}",
        )


def _verdict_of(v: Any) -> str:
    verdict = _g(v, "verdict")
    if verdict is None:
        return "not measured"
    return "**missed**" if verdict == "missed" else str(verdict)


def _dashboard_rows(row: Any) -> None:
    """The dashboard (bench/s_dashboard.py): each page's server time at p99 over S8's
    events (its Server-Timing; the target's measure), the whole request beside it."""
    d = _load("s_dashboard")
    if not d:
        return
    events = _fmt(_g(d, "events"))
    for page, m in (_g(d, "pages") or {}).items():
        server = _g(m, "server") or {}
        p99 = _g(server, "p99_ms")
        row(
            "Dashboard",
            f"{page} page, {events} events: server time p99",
            p99,
            " ms",
            f"<= {_g(d, 'target_ms')} ms",
            _verdict(p99, _g(d, "target_ms") or 200, False),
            f"server p50 {_fmt(_g(server, 'p50_ms'), ' ms')}; whole request p50 "
            f"{_fmt(_g(m, 'p50_ms'), ' ms')}, p99 {_fmt(_g(m, 'p99_ms'), ' ms')}",
        )
