"""The pure math under analytics: latency histograms, the health score, anomalies in
trends, the engagement score (clarion/domain/{latency,health,trends,engagement}.py)."""

from __future__ import annotations

import math
from fractions import Fraction
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
