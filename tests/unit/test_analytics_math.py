"""The pure math under analytics: latency histograms, the health score, anomalies in
trends, the engagement score (clarion/domain/{latency,health,trends,engagement}.py)."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clarion.domain import engagement, health, latency, trends
from clarion.domain.engagement import engagement_score
from clarion.domain.health import (
    WEIGHTS,
    Targets,
    WindowFacts,
    WindowScore,
    combine,
    score_window,
)
from clarion.domain.latency import (
    BUCKETS,
    LATENCY_EDGES_MS,
    OVERFLOW,
    add,
    bucket_bounds,
    bucket_of,
    histogram,
    percentile,
)
from clarion.domain.trends import flag_anomalies, previous_period

# The same examples every run (derandomize, no example database), as the quick
# schemathesis runs do: a failure here is reproducible from the commit alone.
PROPERTY = settings(max_examples=200, deadline=None, derandomize=True, database=None)


# == latency histograms ==================================================================


def test_edges_are_increasing_from_5_ms_to_7_days() -> None:
    assert LATENCY_EDGES_MS[0] == 5
    assert LATENCY_EDGES_MS[-1] == 7 * 24 * 3600 * 1000
    assert all(a < b for a, b in pairwise(LATENCY_EDGES_MS))
    assert BUCKETS == len(LATENCY_EDGES_MS) + 1 == OVERFLOW + 1
    # Roughly logarithmic: each edge 2x to 4x the previous one.
    assert all(2 <= b / a <= 4 for a, b in pairwise(LATENCY_EDGES_MS))


@pytest.mark.parametrize(
    ("ms", "bucket"),
    [
        (0, 0),
        (5, 0),  # upper edges are inclusive
        (5.0001, 1),
        (10, 1),
        (-250, 0),  # a clock stepping back clamps to the first bucket
        (-math.inf, 0),
        (999.9, 7),
        (1_000, 7),
        (604_800_000, OVERFLOW - 1),
        (604_800_001, OVERFLOW),
        (math.inf, OVERFLOW),
    ],
)
def test_bucket_of(ms: float, bucket: int) -> None:
    assert bucket_of(ms) == bucket


def test_bucket_of_nan_is_refused() -> None:
    with pytest.raises(ValueError):
        bucket_of(math.nan)


def test_bucket_bounds() -> None:
    assert bucket_bounds(0) == (0.0, 5.0)
    assert bucket_bounds(1) == (5.0, 10.0)
    assert bucket_bounds(OVERFLOW) == (604_800_000.0, math.inf)
    for bad in (-1, BUCKETS):
        with pytest.raises(ValueError):
            bucket_bounds(bad)


def test_percentile_of_nothing_is_none() -> None:
    assert percentile([], 0.5) is None
    assert percentile([0] * BUCKETS, 0.99) is None


def test_percentile_interpolates_inside_the_bucket() -> None:
    counts = [0, 0, 10]  # ten samples in (10, 25]; shorter than BUCKETS means zeros after
    assert percentile(counts, 0.0) == 10.0
    assert percentile(counts, 0.5) == 17.5
    assert percentile(counts, 1.0) == 25.0


def test_percentile_across_buckets() -> None:
    counts = [0, 4, 0, 4]  # four in (5, 10], four in (25, 50]
    assert percentile(counts, 0.25) == 7.5
    # The 4th of 8 samples is the last of the first bucket: its upper edge, not the gap.
    assert percentile(counts, 0.5) == 10.0
    assert percentile(counts, 0.75) == 37.5
    assert percentile(counts, 1.0) == 50.0


def test_percentile_in_the_overflow_bucket_is_the_last_edge() -> None:
    counts = [0] * OVERFLOW + [3]
    assert percentile(counts, 0.5) == percentile(counts, 1.0) == 604_800_000.0
    counts = [1] + [0] * (OVERFLOW - 1) + [1]
    assert percentile(counts, 1.0) == 604_800_000.0


@pytest.mark.parametrize("q", [-0.01, 1.01, math.nan, math.inf])
def test_percentile_refuses_q_outside_0_1(q: float) -> None:
    with pytest.raises(ValueError):
        percentile([1], q)


def test_percentile_refuses_malformed_histograms() -> None:
    with pytest.raises(ValueError):
        percentile([1] * (BUCKETS + 1), 0.5)
    with pytest.raises(ValueError):
        percentile([3, -1], 0.5)


def test_add_pads_to_full_length() -> None:
    assert add([1, 2], [0, 0, 5]) == [1, 2, 5] + [0] * (BUCKETS - 3)
    assert add([], []) == [0] * BUCKETS
    with pytest.raises(ValueError):
        add([0] * (BUCKETS + 1), [])


def test_histogram_counts_each_value_once() -> None:
    counts = histogram([0, 5, 6, 1_000, 1e12])
    assert sum(counts) == 5
    assert counts[0] == 2 and counts[1] == 1 and counts[7] == 1 and counts[OVERFLOW] == 1


counts_st = st.lists(st.integers(0, 1_000), min_size=0, max_size=BUCKETS)
q_st = st.floats(0.0, 1.0)
samples_st = st.lists(
    st.one_of(st.floats(0.0, 1e9), st.sampled_from([float(e) for e in LATENCY_EDGES_MS])),
    min_size=1,
    max_size=300,
)


@PROPERTY
@given(counts_st, q_st, q_st)
def test_percentile_is_monotone_in_q(counts: list[int], q1: float, q2: float) -> None:
    low, high = sorted((q1, q2))
    a, b = percentile(counts, low), percentile(counts, high)
    if sum(counts) == 0:
        assert a is None and b is None
    else:
        assert a is not None and b is not None and a <= b


@PROPERTY
@given(counts_st, counts_st, q_st)
def test_percentile_of_merged_lies_between_the_parts(a: list[int], b: list[int], q: float) -> None:
    pa, pb, merged = percentile(a, q), percentile(b, q), percentile(add(a, b), q)
    parts = [p for p in (pa, pb) if p is not None]
    if not parts:
        assert merged is None
        return
    assert merged is not None
    assert min(parts) <= merged <= max(parts)


@PROPERTY
@given(samples_st, q_st)
def test_true_quantile_lies_in_the_answers_bucket(samples: list[float], q: float) -> None:
    """The error is bounded by the width of the bucket the answer is interpolated in."""
    ordered = sorted(samples)
    # The ceil(q*n)-th smallest sample (the first for q = 0), computed exactly.
    k = max(1, math.ceil(Fraction(q) * len(ordered)))
    true = ordered[k - 1]
    answer = percentile(histogram(samples), q)
    assert answer is not None
    index = bucket_of(true)
    lower, upper = bucket_bounds(index)
    if index == OVERFLOW:
        assert answer == LATENCY_EDGES_MS[-1]  # a floor: overflow has no upper bound
    else:
        assert lower <= answer <= upper
        assert abs(answer - true) <= upper - lower


@PROPERTY
@given(samples_st, samples_st)
def test_histograms_of_two_ranges_add_up(a: list[float], b: list[float]) -> None:
    assert add(histogram(a), histogram(b)) == histogram(a + b)


# == health score ========================================================================


def facts(**changes: Any) -> WindowFacts:
    """A perfect 24-hour window; ``changes`` make it less so."""
    base: dict[str, Any] = {
        "window": "24h",
        "accepted": 10_000,
        "delivered": 10_000,
        "dead": 0,
        "failed_attempts": 0,
        "unsubscribed": 0,
        "latency_p95_ms": {"in_app": 40.0, "email": 8_000.0, "webhook": None},
        "provider_attempts": {"smtp": (5_000, 0), "webhook": (5_000, 10)},
        "read_rate": 0.4,
        "previous_read_rate": 0.4,
        "backlog_oldest_age_s": 0.0,
        "degraded": (),
    }
    base.update(changes)
    return WindowFacts(**base)


def component(score: WindowScore, name: str) -> health.Component:
    return next(c for c in score.components if c.name == name)


def test_weights_sum_to_100_and_every_component_is_reported() -> None:
    assert sum(WEIGHTS.values()) == 100
    scored = score_window(facts())
    assert [c.name for c in scored.components] == list(WEIGHTS)
    assert all(c.weight == WEIGHTS[c.name] for c in scored.components)
    assert all(c.target and c.advice for c in scored.components)


def test_a_perfect_window_scores_100() -> None:
    scored = score_window(facts())
    assert scored.score == 100.0 and scored.enough_data
    assert all(c.score == 100.0 for c in scored.components)


def test_a_perfect_window_with_no_events_at_all_scores_100() -> None:
    empty = facts(
        accepted=0,
        delivered=0,
        latency_p95_ms={},
        provider_attempts={},
        read_rate=None,
        previous_read_rate=None,
    )
    scored = score_window(empty)
    assert scored.score == 100.0 and not scored.enough_data


@pytest.mark.parametrize(
    ("delivered", "dead", "expected"),
    [(990, 10, 100.0), (970, 30, 75.0), (950, 50, 50.0), (900, 100, 0.0), (500, 500, 0.0)],
)
def test_delivery_success_breakpoints(delivered: int, dead: int, expected: float) -> None:
    scored = score_window(facts(accepted=1_000_000, delivered=delivered, dead=dead))
    c = component(scored, health.DELIVERY_SUCCESS)
    assert c.figure == pytest.approx(delivered / (delivered + dead))
    assert c.score == pytest.approx(expected)


@pytest.mark.parametrize(
    ("dead", "expected"), [(0, 100.0), (10, 100.0), (100, 60.0), (300, 30.0), (500, 0.0)]
)
def test_dead_letter_breakpoints(dead: int, expected: float) -> None:
    c = component(score_window(facts(dead=dead)), health.DEAD_LETTERS)
    assert c.figure == dead / 10_000
    assert c.score == pytest.approx(expected)


def test_dead_letters_without_accepted_notifications_count_as_all_dead() -> None:
    # Deliveries of notifications accepted before the window may die inside it.
    c = component(score_window(facts(accepted=0, delivered=0, dead=30)), health.DEAD_LETTERS)
    assert c.figure == 1.0 and c.score == 0.0


def test_latency_is_judged_on_the_worst_channel_against_its_own_target() -> None:
    # email at 90 s is 1.5x its 60 s target (75); in_app at 3 s is 3x its 1 s target (25).
    scored = score_window(facts(latency_p95_ms={"email": 90_000.0, "in_app": 3_000.0}))
    c = component(scored, health.LATENCY)
    assert c.score == pytest.approx(25.0)
    assert c.figure == 3_000.0 and "in_app" in c.target and "1 s" in c.target


def test_an_unknown_channel_gets_the_most_lenient_target() -> None:
    c = component(score_window(facts(latency_p95_ms={"pigeon": 59_000.0})), health.LATENCY)
    assert c.score == 100.0
    c = component(score_window(facts(latency_p95_ms={"pigeon": 240_000.0})), health.LATENCY)
    assert c.score == 0.0


def test_targets_can_be_set() -> None:
    strict = Targets(latency_p95_ms={"email": 4_000.0}, backlog_age_s=10.0, min_events=1)
    scored = score_window(facts(backlog_oldest_age_s=50.0), strict)
    assert component(scored, health.LATENCY).score == pytest.approx(50.0)  # 8 s = 2x
    assert component(scored, health.BACKLOG_AGE).score == pytest.approx(50.0)  # 5x
    with pytest.raises(ValueError):
        Targets(backlog_age_s=0)


@pytest.mark.parametrize(
    ("age", "expected"), [(0, 100.0), (60, 100.0), (300, 50.0), (1_050, 25.0), (7_200, 0.0)]
)
def test_backlog_age_breakpoints(age: float, expected: float) -> None:
    c = component(score_window(facts(backlog_oldest_age_s=age)), health.BACKLOG_AGE)
    assert c.figure == age and c.score == pytest.approx(expected)


def test_provider_errors_judge_the_worst_provider_with_enough_attempts() -> None:
    providers = {"smtp": (1_000, 50), "sms-gw": (5, 5), "webhook": (1_000, 0)}
    c = component(score_window(facts(provider_attempts=providers)), health.PROVIDER_ERRORS)
    # sms-gw failed every attempt but made only 5: too few to judge.
    assert c.figure == 0.05 and c.score == pytest.approx(50.0) and "smtp" in c.target


def test_a_provider_failing_every_attempt_scores_0() -> None:
    providers = {"smtp": (100, 100), "webhook": (1_000, 0)}
    c = component(score_window(facts(provider_attempts=providers)), health.PROVIDER_ERRORS)
    assert c.figure == 1.0 and c.score == 0.0


@PROPERTY
@given(st.integers(0, 200), st.integers(0, 200), st.integers(1, 200), st.booleans())
def test_more_errors_on_a_provider_never_raise_its_component(
    attempts: int, errors: int, extra: int, new_attempts: bool
) -> None:
    """Focused on one provider, so that every example exercises its threshold and cap."""
    errors = min(errors, attempts)

    def scored(a: int, e: int) -> float:
        f = facts(provider_attempts={"smtp": (a, e), "webhook": (1_000, 0)})
        return component(score_window(f), health.PROVIDER_ERRORS).score

    after = scored(attempts + (extra if new_attempts else 0), errors + extra)
    assert after <= scored(attempts, errors)


@pytest.mark.parametrize(
    ("unsubscribed", "expected"), [(0, 100.0), (20, 100.0), (50, 50.0), (200, 0.0)]
)
def test_opt_out_breakpoints(unsubscribed: int, expected: float) -> None:
    c = component(score_window(facts(unsubscribed=unsubscribed)), health.OPT_OUTS)
    assert c.score == pytest.approx(expected)


@pytest.mark.parametrize(
    ("now", "before", "figure", "expected"),
    [
        (0.4, 0.4, 0.0, 100.0),
        (0.6, 0.4, 0.5, 100.0),  # a rise never lifts the component above 100
        (0.36, 0.4, -0.1, 100.0),
        (0.3, 0.4, -0.25, 50.0),
        (0.2, 0.4, -0.5, 0.0),
        (0.0, 0.4, -1.0, 0.0),
        (0.3, None, None, 100.0),  # nothing to compare with
        (0.3, 0.0, None, 100.0),
        (None, 0.4, None, 100.0),
    ],
)
def test_read_rate_trend(
    now: float | None, before: float | None, figure: float | None, expected: float
) -> None:
    c = component(
        score_window(facts(read_rate=now, previous_read_rate=before)), health.READ_RATE_TREND
    )
    assert c.score == pytest.approx(expected)
    assert c.figure == (None if figure is None else pytest.approx(figure))


def test_each_degraded_dependency_costs() -> None:
    one = score_window(facts(degraded=["redis"]))
    two = score_window(facts(degraded=["redis", "database", "redis"]))
    assert component(one, health.DEGRADED_DEPENDENCIES).score == 50.0
    assert one.score == 100 - 15 * 0.5
    assert component(two, health.DEGRADED_DEPENDENCIES).score == 0.0
    assert component(two, health.DEGRADED_DEPENDENCIES).figure == 2.0
    assert "database, redis" in component(two, health.DEGRADED_DEPENDENCIES).advice


def test_a_window_with_too_few_events_is_judged_on_state_alone() -> None:
    thin = facts(
        accepted=5,
        delivered=0,
        dead=5,
        failed_attempts=9,  # 19 events: one short of min_events
        backlog_oldest_age_s=300.0,
    )
    scored = score_window(thin)
    assert not scored.enough_data
    for c in scored.components:
        if c.name in health.EVENT_COMPONENTS:
            assert c.score == 100.0
    # ...but the figures are still shown, and the backlog (state) still counts.
    assert component(scored, health.DELIVERY_SUCCESS).figure == 0.0
    assert scored.score == 100 - 10 * 0.5
    assert score_window(dataclasses.replace(thin, failed_attempts=10)).enough_data


def test_the_worst_window_with_enough_data_sets_the_score() -> None:
    hour = score_window(facts(window="1h", accepted=12, delivered=0, dead=3))  # thin
    day = score_window(facts(window="24h", dead=100))
    week = score_window(facts(window="7d", dead=10))
    combined = combine([hour, day, week])
    assert combined.worst_window == "24h"
    assert combined.score == day.score < week.score
    assert combined.windows == (hour, day, week)


def test_without_enough_data_anywhere_state_alone_sets_the_score() -> None:
    thin = {"accepted": 2, "delivered": 1, "dead": 1}
    windows = [score_window(facts(window=w, **thin)) for w in ("1h", "24h", "7d")]
    assert combine(windows).score == 100.0 and combine(windows).worst_window is None
    stuck = [
        score_window(facts(window=w, backlog_oldest_age_s=3_600.0, **thin))
        for w in ("1h", "24h", "7d")
    ]
    assert combine(stuck).score == 90.0 and combine(stuck).worst_window is None


def test_combine_needs_a_window() -> None:
    with pytest.raises(ValueError):
        combine([])


def test_facts_are_checked() -> None:
    with pytest.raises(ValueError):
        facts(dead=-1)
    with pytest.raises(ValueError):
        facts(provider_attempts={"x": (3, -1)})
    with pytest.raises(ValueError):
        facts(backlog_oldest_age_s=math.nan)


# -- properties: a bad input getting worse never raises the score ------------------------

CHANNELS = ["in_app", "websocket", "webhook", "push", "sms", "email", "apprise", "pigeon"]
counts = st.integers(0, 5_000)
rates = st.none() | st.floats(0.0, 1.0)


@st.composite
def window_facts(draw: st.DrawFn, window: str = "24h") -> WindowFacts:
    return WindowFacts(
        window=window,
        accepted=draw(counts),
        delivered=draw(counts),
        dead=draw(st.integers(0, 300)),
        failed_attempts=draw(st.integers(0, 300)),
        unsubscribed=draw(st.integers(0, 300)),
        latency_p95_ms=draw(
            st.dictionaries(st.sampled_from(CHANNELS), st.none() | st.floats(0, 1e7), max_size=4)
        ),
        provider_attempts=draw(
            st.dictionaries(
                st.sampled_from(["smtp", "twilio", "fcm", "hooks"]),
                st.tuples(st.integers(0, 2_000), st.integers(0, 200)),
                max_size=3,
            )
        ),
        read_rate=draw(rates),
        previous_read_rate=draw(rates),
        backlog_oldest_age_s=draw(st.floats(0, 10_000)),
        degraded=draw(st.lists(st.sampled_from(["database", "redis", "smtp"]), max_size=2)),
    )


targets_st = st.builds(Targets, min_events=st.integers(0, 50))
amount = st.integers(1, 500)


@st.composite
def worse(draw: st.DrawFn, f: WindowFacts) -> WindowFacts:
    """``f`` with exactly one bad input made worse."""
    how = draw(
        st.sampled_from(
            [
                "dead",
                "failed_attempts",
                "latency",
                "backlog",
                "provider_errors",
                "provider_failures",
                "unsubscribed",
                "read_rate",
                "degraded",
            ]
        )
    )
    replace = dataclasses.replace
    if how in ("dead", "failed_attempts", "unsubscribed"):
        return replace(f, **{how: getattr(f, how) + draw(amount)})
    if how == "latency":
        measured = [ch for ch, p in f.latency_p95_ms.items() if p is not None]
        if not measured:
            return f
        ch = draw(st.sampled_from(measured))
        slower = dict(f.latency_p95_ms)
        slower[ch] = (slower[ch] or 0.0) + draw(st.floats(0.001, 1e7))
        return replace(f, latency_p95_ms=slower)
    if how == "backlog":
        return replace(f, backlog_oldest_age_s=f.backlog_oldest_age_s + draw(st.floats(0.001, 1e5)))
    if how in ("provider_errors", "provider_failures"):
        provider = draw(st.sampled_from(["smtp", "twilio", "fcm", "hooks"]))
        attempts, errors = f.provider_attempts.get(provider, (0, 0))
        extra = draw(amount)
        # "errors": more of the same attempts failed; "failures": new attempts that failed
        # (a provider may cross the attempts needed to be judged).
        attempts += extra if how == "provider_failures" else 0
        changed = {**f.provider_attempts, provider: (attempts, errors + extra)}
        return replace(f, provider_attempts=changed)
    if how == "read_rate":
        if f.read_rate is None:
            return f
        lower = draw(st.floats(0.0, f.read_rate)) if f.read_rate > 0 else 0.0
        return replace(f, read_rate=lower)
    candidates = [d for d in ("database", "redis", "smtp", "broker") if d not in f.degraded]
    new = draw(st.sampled_from(candidates))
    return replace(f, degraded=[*f.degraded, new])


@PROPERTY
@given(st.data(), targets_st)
def test_a_window_never_scores_higher_when_an_input_gets_worse(
    data: st.DataObject, targets: Targets
) -> None:
    before = data.draw(window_facts())
    after = data.draw(worse(before))
    a, b = score_window(before, targets), score_window(after, targets)
    assert b.score <= a.score
    for window in (a, b):
        assert 0.0 <= window.score <= 100.0
        assert all(0.0 <= c.score <= 100.0 for c in window.components)


@PROPERTY
@given(st.data(), targets_st)
def test_the_combined_score_never_rises_when_an_input_gets_worse(
    data: st.DataObject, targets: Targets
) -> None:
    names = ("1h", "24h", "7d")
    before = [data.draw(window_facts(w)) for w in names]
    # Backlog and dependencies are measured once, now: every window shares them.
    now = before[0]
    before = [
        dataclasses.replace(f, backlog_oldest_age_s=now.backlog_oldest_age_s, degraded=now.degraded)
        for f in before
    ]
    which = data.draw(st.integers(0, 2))
    changed = data.draw(worse(before[which]))
    after = list(before)
    if (changed.backlog_oldest_age_s, list(changed.degraded)) != (
        before[which].backlog_oldest_age_s,
        list(before[which].degraded),
    ):
        after = [
            dataclasses.replace(
                f, backlog_oldest_age_s=changed.backlog_oldest_age_s, degraded=changed.degraded
            )
            for f in before
        ]
    else:
        after[which] = changed
    a = combine([score_window(f, targets) for f in before])
    b = combine([score_window(f, targets) for f in after])
    assert b.score <= a.score
    assert 0.0 <= b.score <= 100.0
    # With shared state, the score is a window with enough data whenever one exists.
    for result in (a, b):
        judged = [w for w in result.windows if w.enough_data]
        if judged:
            assert result.worst_window is not None
            assert result.score == min(w.score for w in judged)
        else:
            assert result.worst_window is None


@PROPERTY
@given(window_facts(), targets_st)
def test_the_score_is_the_weighted_mean_of_its_components(f: WindowFacts, targets: Targets) -> None:
    scored = score_window(f, targets)
    expected = sum(c.weight * c.score for c in scored.components) / 100
    assert scored.score == pytest.approx(expected)
    assert scored.enough_data == (f.events >= targets.min_events)


# == anomalies in trends =================================================================


def test_a_flat_series_with_one_spike_flags_exactly_the_spike() -> None:
    values: list[float | None] = [100.0] * 40
    values[25] = 400.0
    assert [i for i, flag in enumerate(flag_anomalies(values)) if flag] == [25]


def test_a_noisy_series_with_one_spike_flags_exactly_the_spike() -> None:
    values: list[float | None] = [100.0 + (i * 7 % 5) - 2 for i in range(60)]
    values[40] = 160.0
    values[50] = 45.0  # a dip is an anomaly too
    assert [i for i, flag in enumerate(flag_anomalies(values)) if flag] == [40, 50]


def test_short_history_flags_nothing() -> None:
    assert flag_anomalies([1.0, 1.0, 1.0, 1.0, 1.0, 900.0]) == [False] * 6
    assert flag_anomalies([]) == []
    # Missing points do not count towards the history.
    values: list[float | None] = [1.0, None, 1.0, None, 1.0, 1.0, 1.0, None, 900.0]
    assert not any(flag_anomalies(values))
    assert flag_anomalies([*values[:-1], 1.0, 900.0])[-1]


def test_a_missing_point_is_never_anomalous() -> None:
    values: list[float | None] = [*[5.0] * 10, None, math.nan, math.inf]
    assert flag_anomalies(values)[-3:] == [False, False, False]


def test_the_baseline_trails() -> None:
    # A lasting change of level is flagged at first, then becomes the new normal once it
    # fills half the baseline.
    values: list[float | None] = [*[10.0] * 30, *[50.0] * 30]
    flags = flag_anomalies(values, baseline=10)
    flagged = [i for i, flag in enumerate(flags) if flag]
    assert flagged[0] == 30 and all(i < 36 for i in flagged)


def test_a_zero_mad_uses_the_flat_rule() -> None:
    # Median 0: a difference of 1 is noise, 2 is not.
    assert not flag_anomalies([0.0] * 10 + [1.0])[-1]
    assert flag_anomalies([0.0] * 10 + [2.0])[-1]
    # Median 100: half the median.
    assert not flag_anomalies([100.0] * 10 + [150.0])[-1]
    assert flag_anomalies([100.0] * 10 + [151.0])[-1]


def test_anomaly_parameters_are_checked() -> None:
    for kwargs in ({"baseline": 0}, {"min_history": 0}, {"min_history": 30}, {"threshold": 0}):
        with pytest.raises(ValueError):
            flag_anomalies([1.0], **kwargs)


@PROPERTY
@given(
    st.lists(st.none() | st.floats(-1e6, 1e6), max_size=80),
    st.integers(1, 30),
    st.integers(1, 30),
)
def test_anomaly_flags_are_one_per_point_and_need_history(
    values: list[float | None], baseline: int, min_history: int
) -> None:
    min_history = min(min_history, baseline)
    flags = flag_anomalies(values, baseline=baseline, min_history=min_history)
    assert len(flags) == len(values)
    # The first min_history points cannot have min_history points before them.
    assert not any(flags[:min_history])
    assert not any(f for f, v in zip(flags, values, strict=True) if v is None)


@PROPERTY
@given(st.floats(-1e6, 1e6), st.integers(0, 80))
def test_a_constant_series_has_no_anomaly(value: float, length: int) -> None:
    assert not any(flag_anomalies([value] * length))


def test_previous_period_naive_and_utc() -> None:
    start, end = datetime(2024, 5, 2), datetime(2024, 5, 9)
    assert previous_period(start, end) == (datetime(2024, 4, 25), start)
    s, e = datetime(2024, 5, 2, 6, tzinfo=UTC), datetime(2024, 5, 2, 7, 30, tzinfo=UTC)
    assert previous_period(s, e) == (s - timedelta(minutes=90), s)


def test_previous_period_counts_elapsed_time_across_dst() -> None:
    paris = ZoneInfo("Europe/Paris")
    # The day clocks went forward in Paris is 23 hours long.
    start = datetime(2024, 3, 31, tzinfo=paris)
    end = datetime(2024, 4, 1, tzinfo=paris)
    prev_start, prev_end = previous_period(start, end)
    assert prev_end == start
    assert start - prev_start == timedelta(hours=23) == end.astimezone(UTC) - start
    assert prev_start.astimezone(UTC) == datetime(2024, 3, 30, 0, tzinfo=UTC)
    assert prev_start.tzinfo is paris


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (datetime(2024, 5, 2), datetime(2024, 5, 2)),
        (datetime(2024, 5, 2), datetime(2024, 5, 1)),
        (datetime(2024, 5, 2, tzinfo=UTC), datetime(2024, 5, 3)),
    ],
)
def test_previous_period_refuses_empty_or_mixed_periods(start: datetime, end: datetime) -> None:
    with pytest.raises(ValueError):
        previous_period(start, end)


# == engagement score ====================================================================


def test_engagement_formula() -> None:
    # 15*0.8 + 35*0.4 + 30*(0.05/0.25) + 20*(0.01/0.10) = 12 + 14 + 6 + 2
    assert engagement_score(100, 80, 40, 5, 1, None) == pytest.approx(34.0)
    assert engagement_score(100, 80, 40, 5, 1, 0) == pytest.approx(34.0)
    assert engagement_score(100, 80, 40, 5, 1, 14) == pytest.approx(17.0)  # half-life
    assert engagement_score(100, 80, 40, 5, 1, 28) == pytest.approx(8.5)


def test_engagement_bounds() -> None:
    assert engagement_score(0, 0, 0, 0, 0, 0) == 0.0
    assert engagement_score(0, 5, 5, 5, 5, 0) == 0.0
    assert engagement_score(10, 10, 10, 3, 1, 0) == 100.0
    # More than received (read twice, user-level conversions) is capped, not over 100.
    assert engagement_score(10, 50, 50, 50, 50, -3) == 100.0
    with pytest.raises(ValueError):
        engagement_score(10, -1, 0, 0, 0, None)
    with pytest.raises(ValueError):
        engagement_score(10, 1, 0, 0, 0, math.nan)


small = st.integers(0, 500)
days = st.none() | st.floats(-5, 3_650)


@PROPERTY
@given(
    small,
    small,
    small,
    small,
    small,
    days,
    st.sampled_from(["seen", "read", "clicked", "converted"]),
    st.integers(1, 100),
)
def test_more_activity_never_lowers_engagement(
    received: int,
    seen: int,
    read: int,
    clicked: int,
    converted: int,
    inactive: float | None,
    what: str,
    more: int,
) -> None:
    args = {"seen": seen, "read": read, "clicked": clicked, "converted": converted}
    before = engagement_score(received, **args, days_since_last_active=inactive)
    args[what] += more
    after = engagement_score(received, **args, days_since_last_active=inactive)
    assert 0.0 <= before <= after <= 100.0
    if received == 0:
        assert before == after == 0.0


@PROPERTY
@given(small, small, small, small, small, st.floats(-5, 3_650), st.floats(0, 3_650))
def test_more_days_inactive_never_raises_engagement(
    received: int, seen: int, read: int, clicked: int, converted: int, d: float, more: float
) -> None:
    before = engagement_score(received, seen, read, clicked, converted, d)
    after = engagement_score(received, seen, read, clicked, converted, d + more)
    assert after <= before
    # Unknown inactivity applies no decay: never below a known one.
    assert engagement_score(received, seen, read, clicked, converted, None) >= before


def test_modules_read_no_clock() -> None:
    """Times are passed in (the domain layer's rule, docs/architecture.md); lint-imports
    checks the imports, this the clock."""
    for module in (latency, health, trends, engagement):
        source = Path(module.__file__ or "").read_text(encoding="utf-8")
        for forbidden in (".now(", "utcnow", "today(", "time.time", "monotonic"):
            assert forbidden not in source, (module.__name__, forbidden)
