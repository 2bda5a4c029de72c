"""The bench summary from synthetic results: each target's ratio, its verdict, and "not
measured" for a figure the results do not have (bench/summary.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.summary import MET, MISSED, NOT_MEASURED, Row, build_rows, build_summary, write_summary


def _results() -> dict[str, dict[str, Any]]:
    return {
        "calibration": {
            "commit": "c0ffee",
            "cpus": 2,
            "pgbench": {"tps": 1000.0, "server_cpu_us_per_tx": 90.0},
            "starlette": {
                "ok_per_s": 10000.0,
                "server_cpu_us_per_request": 50.0,
                "capacity": {"objective_p99_ms": 25, "rate_per_s": 8000.0, "p99_ms": 20.0},
            },
            "broadcast": {"server_cpu_us_per_delivery": 20.0},
        },
        "s1_ingest": {
            "commit": "c0ffee",
            "postgres": {
                "ok_per_s": 1100.0,  # 1.1x pgbench: met
                "p99_ms": 18.0,
                "server_cpu_us_per_send": 200.0,  # 4x Starlette's CPU per request: missed
                "capacity": {"objective_p99_ms": 25, "rate_per_s": 2000.0},
                "at_half_capacity": {"rate_per_s": 1000.0, "p50_ms": 2.0, "p99_ms": 6.0},
            },
            "sqlite": {"ok_per_s": 2000.0, "server_cpu_us_per_send": 300.0},  # 0.2: missed
            "bulk_postgres": {
                "notifications_per_s": 20000.0,
                "rows_per_s": 30000.0,
                "raw_insert_rows_per_s": 100000.0,  # 0.3 exactly: met
                "rows_per_notification": 1.5,
            },
        },
        "s5_inbox": {
            "commit": "c0ffee",
            "notifications": 100000,
            "clarion": {
                "reads_per_s": 3500.0,  # 0.35 of bare Starlette: met
                "server_cpu_us_per_read": 150.0,
                "latency_alone": {
                    "unread_count": {"p99_ms": 1.0},
                    "unread_count_heavy": {"p99_ms": 1.0},
                    "first_page": {"p99_ms": 1.2},
                    "first_page_heavy": {"p99_ms": 1.3},
                },
                "mark_all_read_heavy_first": {"ms": 30.0},
            },
            "django": {"reads_per_s": 100.0, "mark_all_read_heavy_first": {"ms": 300.0}},
            "raw_driver": {
                "count_p99_ms": 0.4,  # Clarion 2.5x: missed
                "count_heavy_p99_ms": 0.5,  # 2x exactly: met
                "first_page_p99_ms": 0.8,  # 1.5x: met
                # first_page_heavy_p99_ms missing: not measured
                "over_bare_starlette": {"count_p99_ms": 0.8, "server_cpu_us_per_read": 60.0},
            },
        },
        "s6_workers": {
            "commit": "c0ffee",
            "deliveries": 1000,
            "deliveries_per_second": 6000.0,
            "raw_signed_posts_per_second_no_db": 10000.0,
            "ratio_to_raw": 0.6,
            "worker_cpu_us_per_delivery": 110.0,
        },
        "s8_analytics": {
            "commit": "0ld0ld0",
            "timestamp": "2026-12-01T10:00:00+00:00",
            "mode": "full",
            "rollup_cost": {
                "cpu_per_send_increase_pct": 2.0,
                "throughput_decrease_pct": 7.5,
                "pairs": [0.9, 0.95],
                "method": "on/off pairs",
            },
        },
        # s9_experiments has no assignment_cost: not measured
        "s9_experiments": {"commit": "c0ffee"},
    }


def _row(rows: list[Row], scenario: str, what: str) -> Row:
    found = [r for r in rows if r.scenario == scenario and r.what.startswith(what)]
    assert len(found) == 1, f"{scenario} / {what}: {[r.what for r in rows]}"
    return found[0]


@pytest.fixture
def rows() -> list[Row]:
    return build_rows(_results())


def test_s1_ratios_and_verdicts(rows: list[Row]) -> None:
    one = _row(rows, "S1 ingest", "POST /notifications, PostgreSQL, one serve process")
    assert (one.ratio, one.target, one.verdict) == ("1.10x pgbench -N", ">= 1x", MET)
    assert one.reference == "pgbench -N 1,000.0 TPS"
    assert one.absolute.endswith("†")  # throughput depends on the machine
    cpu = _row(rows, "S1 ingest", "server CPU per send")
    assert (cpu.ratio, cpu.target, cpu.verdict) == (
        "4.00x bare Starlette's CPU per request",
        "<= 3x",
        MISSED,
    )
    assert _row(rows, "S1 ingest", "POST /notifications, SQLite").verdict == MISSED
    bulk = _row(rows, "S1 ingest", "bulk sends")
    assert (bulk.ratio.split("x")[0], bulk.verdict) == ("0.30", MET)


def test_s5_against_starlette_django_and_the_raw_driver(rows: list[Row]) -> None:
    reads = _row(rows, "S5 inbox", "reads/s (count")
    assert (reads.ratio, reads.verdict) == ("0.35x bare Starlette", MET)
    mix = [r for r in rows if r.scenario == "S5 inbox" and r.what == "reads/s, same mix"]
    assert [(r.ratio, r.verdict) for r in mix] == [
        ("35.0x django-notifications", MET),
        (NOT_MEASURED, "—"),  # the bare endpoint's reads/s is missing: shown, no target
    ]
    cpu = _row(rows, "S5 inbox", "server CPU per read")
    assert cpu.ratio == "2.50x the same SQL behind bare Starlette"
    count = _row(rows, "S5 inbox", "unread count p99")
    assert (count.ratio.split("x")[0], count.target, count.verdict) == ("2.50", "<= 2x", MISSED)
    assert "behind bare Starlette 0.80 ms, Clarion ÷ that 1.25x" in count.reference
    assert _row(rows, "S5 inbox", "unread count, heavy user").verdict == MET
    assert _row(rows, "S5 inbox", "first page p99").verdict == MET
    heavy = _row(rows, "S5 inbox", "first page, heavy user")
    assert (heavy.ratio, heavy.verdict) == (NOT_MEASURED, NOT_MEASURED)
    assert heavy.absolute == "1.30 ms †"  # Clarion's own figure is still shown
    mark = _row(rows, "S5 inbox", "first mark-all-read")
    assert (mark.target, mark.verdict) == ("<= 20 ms", MISSED)  # an absolute target


def test_s6_ratio_to_raw_posts_and_cpu_per_delivery(rows: list[Row]) -> None:
    s6 = _row(rows, "S6 workers", "webhook deliveries/s")
    assert (s6.ratio, s6.target, s6.verdict) == (
        "0.60x raw signed POSTs to the same sink",
        ">= 0.5x",
        MET,
    )
    assert "worker CPU per delivery 110.0 µs" in s6.absolute


def test_feature_costs_judged_on_cpu_per_send_and_missing_is_not_measured(
    rows: list[Row],
) -> None:
    rollups = _row(rows, "S8 analytics", "rollups: cost on S1")
    assert rollups.verdict == MET  # +2 % CPU per send against 5 %
    assert rollups.ratio == "+2.0 % CPU per send; 7.50 % throughput"
    assert "2 on/off pairs" in rollups.reference
    assignment = _row(rows, "S9 experiments", "a running experiment")
    assert (assignment.ratio, assignment.verdict) == (NOT_MEASURED, NOT_MEASURED)


def test_a_scenario_without_results_is_not_measured(rows: list[Row]) -> None:
    for what in ("capacity at p99", "p99 commit -> receipt at half"):
        row = _row(rows, "S2 live latency", what)
        assert (row.ratio, row.verdict) == (NOT_MEASURED, NOT_MEASURED)
    (s3,) = (r for r in rows if r.scenario == "S3 fan-out" and r.target == "<= 1.5x")
    assert s3.verdict == NOT_MEASURED
    assert "websockets.broadcast() (the calibration) 20.0 µs" in s3.reference


def test_every_contract_target_has_a_row(rows: list[Row]) -> None:
    targets = {(r.scenario, r.target) for r in rows}
    for scenario, target in (
        ("S1 ingest", ">= 1x"),
        ("S1 ingest", "<= 3x"),
        ("S1 ingest", ">= 0.25x"),
        ("S1 ingest", ">= 0.3x"),
        ("S2 live latency", ">= 0.3x"),
        ("S2 live latency", "<= 2x"),
        ("S3 fan-out", "<= 1.5x"),
        ("S3 fan-out", "<= 2x"),
        ("S3 fan-out", "<= 50 ms"),
        ("S5 inbox", ">= 0.3x"),
        ("S5 inbox", ">= 20x"),
        ("S5 inbox", "<= 2x"),
        ("S6 workers", ">= 0.5x"),
        ("S8 analytics", "<= 5 %"),
        ("S9 experiments", "<= 3 %"),
    ):
        assert (scenario, target) in targets


def test_the_text_names_the_run_its_ceilings_and_other_runs() -> None:
    text = build_summary(_results(), "quick", "c0ffee", when="2026-12-07T21:00+00:00")
    run = next(line for line in text.splitlines() if line.startswith("Run: "))
    assert "commit `c0ffee`, 2026-12-07T21:00+00:00, quick run" in run
    assert "pgbench -N (8 clients) 1,000.0 TPS" in run
    assert "capacity at p99 <= 25 ms 8,000.0/s" in run
    assert "Redis PUBLISH not measured" in run
    assert "s8_analytics (`0ld0ld0`, 2026-12-01T10:00, full)" in text
    assert text.count("\n| S") + text.count("\n| Dashboard") == len(build_rows(_results()))


def test_write_summary_reads_the_result_files(tmp_path: Path) -> None:
    for name, data in _results().items():
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
    text = write_summary("quick", "c0ffee", directory=tmp_path)
    assert (tmp_path / "summary.md").read_text() == text
    assert "| S6 workers | webhook deliveries/s (1,000, one clarion worker) | 0.60x" in text


def test_s10_rows_from_the_table_the_scenario_writes() -> None:
    from bench.summary_more import s10_from_table

    table = (
        "| measure | p50 | p90 | target | baseline p50 (same browser, same run) | ratio |\n"
        "| --- | --- | --- | --- | --- | --- |\n"
        "| page load -> badge shows 20 | 142.4 ms | 195.2 ms | <= 300 ms | bare page + one "
        "unread-count fetch 100.5 ms | x1.42 |\n"
        "| bell click -> 20 rows shown | 9.2 ms | 150.0 ms | <= 100 ms | one first-page "
        "fetch 17.0 ms | x0.54 |\n"
    )
    rows = build_rows({"s10_widget": s10_from_table(table)})
    badge = _row(rows, "S10 widget", "page load -> badge")
    assert (badge.ratio.split("x")[0], badge.target, badge.verdict) == ("1.42", "<= 300 ms", MET)
    assert badge.absolute == "142.4 ms (195.2 ms) †"
    assert _row(rows, "S10 widget", "bell click").verdict == MISSED  # p90 150 ms > 100 ms
