"""The capacity search of the bench (bench/capacity.py) against synthetic servers: no
processes, no network, deterministic."""

from __future__ import annotations

from typing import Any

from bench.capacity import at_rate, passes, search


def queueing_server(capacity: float, base_ms: float = 2.0) -> Any:
    """p99 grows like an M/M/1 queue's toward ``capacity`` and explodes past it, where
    only ``capacity`` requests/s are answered."""
    calls: list[float] = []

    def measure(rate: float) -> dict[str, Any]:
        calls.append(rate)
        if rate >= capacity:
            return {"ok_per_s": capacity, "p50_ms": 500.0, "p99_ms": 3000.0}
        load = rate / capacity
        return {"ok_per_s": rate, "p50_ms": base_ms, "p99_ms": base_ms / (1 - load)}

    measure.calls = calls  # type: ignore[attr-defined]
    return measure


def test_finds_the_highest_rate_within_the_objective() -> None:
    # p99 = 2 / (1 - r/1000) <= 25 ms  <=>  r <= 920/s.
    measure = queueing_server(1000)
    out = search(measure, objective_p99_ms=25, start=100, growth=2, resolution=1.02, max_steps=20)
    assert out["objective_p99_ms"] == 25
    assert 920 / 1.02 <= out["rate_per_s"] <= 920
    assert out["p99_ms"] <= 25
    assert out["first_fail_rate_per_s"] > 920
    assert [s["rate_per_s"] for s in out["steps"]][:4] == [100, 200, 400, 800]
    assert all(s["passed"] == (s["rate_per_s"] <= 920) for s in out["steps"])


def test_starting_above_capacity_steps_down_then_bisects() -> None:
    measure = queueing_server(1000)
    out = search(measure, start=5000, growth=2, resolution=1.05, max_steps=20)
    rates = [s["rate_per_s"] for s in out["steps"]]
    assert rates[:4] == [5000, 2500, 1250, 625]
    assert 920 / 1.05 <= out["rate_per_s"] <= 920


def test_a_server_that_answers_fast_but_drops_work_does_not_pass() -> None:
    def dropping(rate: float) -> dict[str, Any]:  # p99 always 1 ms, answers at most 300/s
        return {"ok_per_s": min(rate, 300.0), "p50_ms": 0.5, "p99_ms": 1.0}

    out = search(dropping, start=100, growth=2, resolution=1.02, max_steps=20)
    assert 300 / 1.02 <= out["rate_per_s"] <= 300 / 0.95
    assert not passes({"ok_per_s": 90.0, "p99_ms": 1.0}, 100, 25, 0.05)
    assert passes({"ok_per_s": 96.0, "p99_ms": 25.0}, 100, 25, 0.05)
    assert not passes({"ok_per_s": 100.0, "p99_ms": None}, 100, 25, 0.05)


def test_no_passing_rate_reports_none() -> None:
    def slow(rate: float) -> dict[str, Any]:
        return {"ok_per_s": rate, "p50_ms": 40.0, "p99_ms": 80.0}

    out = search(slow, start=100, min_rate=10, growth=2, max_steps=20)
    assert out["rate_per_s"] is None and out["p99_ms"] is None
    assert out["steps"][-1]["rate_per_s"] == 10
    assert at_rate(slow, None) is None


def test_steps_and_time_are_bounded() -> None:
    measure = queueing_server(10**9)  # never fails: growth stops at max_steps
    out = search(measure, start=100, growth=2, max_steps=6)
    assert len(out["steps"]) == 6 and out["rate_per_s"] == 3200

    now = [0.0]

    def clock() -> float:
        return now[0]

    def thirty_seconds_each(rate: float) -> dict[str, Any]:
        now[0] += 30
        return queueing_server(1000)(rate)

    out = search(thirty_seconds_each, start=100, growth=2, budget_s=120, clock=clock)
    assert len(out["steps"]) == 4 and out["seconds"] == 120


def test_growth_stops_at_max_rate() -> None:
    measure = queueing_server(10**9)
    out = search(measure, start=100, growth=2, max_rate=500, max_steps=20)
    assert [s["rate_per_s"] for s in out["steps"]] == [100, 200, 400, 500]
    assert out["rate_per_s"] == 500


def test_at_rate_measures_once() -> None:
    measure = queueing_server(1000)
    out = at_rate(measure, 460)
    assert out is not None
    assert out["rate_per_s"] == 460 and out["ok_per_s"] == 460
    assert abs(out["p99_ms"] - 2 / 0.54) < 1e-9
    assert measure.calls == [460]
