"""The bench's feature-cost figures (bench/feature_cost.py): medians of per-pair ratios,
their bootstrap interval, and a verdict that only says met or missed when the interval
is on one side of the budget."""

from __future__ import annotations

from typing import Any

from bench.feature_cost import median_interval, summarise, verdict


def _block(cpu_us: float, ok_per_s: float, order: str, db_us: float = 100.0) -> dict[str, Any]:
    return {
        "requests": 1000,
        "ok": 1000,
        "ok_per_s": ok_per_s,
        "server_cpu_us_per_send": cpu_us,
        "db_cpu_us_per_send": db_us,
        "order": order,
    }


def test_verdict_needs_the_whole_interval_on_one_side_of_the_budget() -> None:
    assert verdict([0.5, 2.9], 3.0) == "met"
    assert verdict([-1.0, 3.0], 3.0) == "met"
    assert verdict([2.0, 4.0], 3.0) == "inconclusive"
    assert verdict([3.1, 6.0], 3.0) == "missed"


def test_median_interval_holds_the_median_and_narrows_with_agreeing_values() -> None:
    assert median_interval([1.02] * 8) == [1.02, 1.02]
    values = [0.98, 1.0, 1.01, 1.02, 1.03, 1.05, 1.2, 0.9, 1.04]
    lo, hi = median_interval(values)
    assert min(values) <= lo <= 1.02 <= hi <= max(values)
    assert hi - lo < max(values) - min(values)


def test_summarise_uses_cpu_per_send_for_the_verdict_and_reports_throughput_beside_it() -> None:
    # CPU per send 5 % higher in every pair, while throughput swings both ways by 20 %.
    off = [_block(600, 1000, "first"), _block(700, 800, "second"), _block(650, 1200, "first")]
    on = [_block(630, 1200, "second"), _block(735, 640, "first"), _block(682.5, 1200, "second")]
    out = summarise(off, on, budget_pct=3.0)
    assert out["cpu_per_send_increase_pct"] == 5.0
    assert out["cpu_per_send_increase_pct_interval95"] == [5.0, 5.0]
    assert out["verdict"] == "missed"
    assert out["throughput_decrease_pct"] == 0.0
    assert out["throughput_decrease_pct_min_max"] == [-20.0, 20.0]
    assert [p["order"] for p in out["pairs"]] == ["off, on", "on, off", "off, on"]
    assert out["db_cpu_per_send_increase_pct"] == 0.0


def test_summarise_refuses_a_verdict_when_requests_failed() -> None:
    off = [_block(600, 1000, "first")]
    on = [{**_block(600, 1000, "second"), "ok": 990}]
    out = summarise(off, on, budget_pct=3.0)
    assert out["failed_requests"] == 10
    assert out["verdict"] == "not measured"
