"""Capacity at a latency objective: the highest offered open-loop rate whose p99 stays
within the objective while the server keeps up with it.

A closed loop says how fast a server goes when every client waits for its answer; it says
nothing about the latency a user sees at a given load. Here the load generator offers a
fixed rate (``bench/loadgen.py`` mode ``rate``, whose latency counts from the moment a
request was due, so queueing shows) for a few seconds per step, and the rate is stepped:
geometric growth while it passes, then bisection between the last pass and the first
fail. A step passes when its p99 is within the objective AND the achieved rate of 2xx
answers is within ``tolerance`` of the offered one (a server that drops or refuses work
does not get to count a low p99). Steps and wall time are bounded, so a search ends in
about two minutes whatever the server does.

``search`` takes the measurement as a function, so the stepping is tested with a
synthetic server (tests/bench/test_capacity.py) and the bench passes ``rate_measure``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from bench.common import Procs, loadgen

Measure = Callable[[float], dict[str, Any]]

STEP_KEYS = ("ok_per_s", "p50_ms", "p99_ms")
EXTRA_STEP_KEYS = ("lost", "server_cpu_us_per_send", "send_http_p99_ms", "quiet_wait_s")


def passes(m: dict[str, Any], rate: float, objective_p99_ms: float, tolerance: float) -> bool:
    """Within the objective, keeping up with the offered rate, and nothing lost (a live
    scenario counts frames that never arrived as ``lost``)."""
    p99 = m.get("p99_ms")
    ok = m.get("ok_per_s") or 0.0
    within = p99 is not None and p99 <= objective_p99_ms
    return within and ok >= rate * (1 - tolerance) and not m.get("lost")


def search(
    measure: Measure,
    objective_p99_ms: float = 25.0,
    start: float = 500.0,
    max_rate: float = 100_000.0,
    min_rate: float = 10.0,
    growth: float = 1.5,
    resolution: float = 1.08,
    max_steps: int = 10,
    budget_s: float = 120.0,
    tolerance: float = 0.05,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Step ``measure(rate)`` to the highest rate that passes (see the module's doc).

    Grows by ``growth`` from ``start`` while steps pass (or shrinks by it while they
    fail), then bisects geometrically until fail/pass is within ``resolution``. Stops
    early at ``max_steps`` measurements or when ``budget_s`` has gone by. ``rate_per_s``
    is ``None`` when no rate down to ``min_rate`` passed."""
    began = clock()
    steps: list[dict[str, Any]] = []
    best: tuple[float, dict[str, Any]] | None = None  # highest passing rate and its step
    fail: float | None = None  # lowest failing rate

    def step(rate: float) -> bool:
        nonlocal best, fail
        m = measure(rate)
        ok = passes(m, rate, objective_p99_ms, tolerance)
        steps.append(
            {
                "rate_per_s": round(rate, 1),
                **{k: m.get(k) for k in STEP_KEYS},
                **{k: m[k] for k in EXTRA_STEP_KEYS if k in m},
                "passed": ok,
            }
        )
        if ok and (best is None or rate > best[0]):
            best = (rate, m)
        if not ok and (fail is None or rate < fail):
            fail = rate
        return ok

    def room() -> bool:
        return len(steps) < max_steps and clock() - began < budget_s

    rate = min(max(start, min_rate), max_rate)
    if step(rate):
        while room() and rate < max_rate:
            rate = min(rate * growth, max_rate)
            if not step(rate):
                break
    else:
        while room() and rate > min_rate:
            rate = max(rate / growth, min_rate)
            if step(rate):
                break
    while room() and best is not None and fail is not None and fail / best[0] > resolution:
        step(math.sqrt(best[0] * fail))
    found = best
    return {
        "objective_p99_ms": objective_p99_ms,
        "rate_per_s": None if found is None else round(found[0], 1),
        "ok_per_s": None if found is None else found[1].get("ok_per_s"),
        "p50_ms": None if found is None else found[1].get("p50_ms"),
        "p99_ms": None if found is None else found[1].get("p99_ms"),
        "first_fail_rate_per_s": None if fail is None else round(fail, 1),
        "tolerance": tolerance,
        "seconds": round(clock() - began, 1),
        "steps": steps,
    }


def at_rate(measure: Measure, rate: float | None) -> dict[str, Any] | None:
    """One measurement at ``rate`` (e.g. half the capacity), or ``None`` without a rate."""
    if not rate:
        return None
    m = measure(rate)
    return {
        "rate_per_s": round(rate, 1),
        **{k: m.get(k) for k in ("ok_per_s", "p50_ms", "p95_ms", "p99_ms", "max_ms")},
    }


def rate_measure(
    procs: Procs,
    request: dict[str, Any],
    seconds: float = 3.0,
    warmup: float = 1.0,
    users: int = 10_000,
    concurrency: int = 256,
    on_result: Callable[[float, dict[str, Any]], None] | None = None,
) -> Measure:
    """``measure(rate)`` for :func:`search`: one ``bench/loadgen.py`` process offering
    ``rate`` requests/s of ``request`` (a loadgen request template) open loop, ``warmup``
    then ``seconds`` measured. ``concurrency`` bounds requests in flight (those waiting
    for a slot still count their latency from when they were due). ``on_result`` sees
    every raw result (to add server CPU, say)."""

    def measure(rate: float) -> dict[str, Any]:
        job = {
            "name": "rate",
            "mode": "rate",
            "rate": rate,
            "concurrency": concurrency,
            "warmup": warmup,
            "duration": seconds,
            "max_requests": int(rate * (seconds + warmup)) + 10,
            "users": users,
            "requests": [request],
        }
        res = loadgen(procs, {"jobs": [job]}, timeout=seconds + warmup + 90)["jobs"]["rate"]
        if on_result is not None:
            on_result(rate, res)
        return dict(res)

    return measure
