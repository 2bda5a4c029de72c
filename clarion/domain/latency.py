"""Latency histograms with fixed bucket edges, and percentiles read from them.

Why fixed edges: a rollup row keeps one count per bucket for an hour (and a type, a
channel...). Because every row uses the same edges, the histogram of any range is the
element-wise sum of its rows (:func:`add`), and a percentile over 30 days costs adding a
few hundred short lists, never a rescan of the raw events. The price is resolution: an
answer is exact only to within the width of the bucket it falls in (see
:func:`percentile`), which the roughly logarithmic edges keep to a fixed *relative*
error (about 2-2.5x between neighbouring edges) from 5 ms to 7 days.

Pure: no I/O, no clock. Durations are milliseconds, measured by the caller.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from fractions import Fraction

#: Inclusive upper bounds, in milliseconds, of buckets 0 .. len-1. Bucket ``i`` holds
#: ``LATENCY_EDGES_MS[i-1] < ms <= LATENCY_EDGES_MS[i]`` (``0 <= ms <= 5`` for bucket 0);
#: bucket ``len(LATENCY_EDGES_MS)`` is the overflow bucket, above 7 days. Never change
#: these once rollups are stored: old rows would be read against the wrong bounds.
LATENCY_EDGES_MS: tuple[int, ...] = (
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    1_000,  # 1 s
    2_500,
    5_000,
    10_000,
    30_000,
    60_000,  # 1 min
    120_000,
    300_000,
    600_000,
    1_800_000,
    3_600_000,  # 1 h
    7_200_000,
    21_600_000,
    86_400_000,  # 1 day
    259_200_000,
    604_800_000,  # 7 days
)

#: How many counts a histogram has: one per edge plus the overflow bucket.
BUCKETS: int = len(LATENCY_EDGES_MS) + 1

OVERFLOW: int = len(LATENCY_EDGES_MS)


def bucket_of(ms: float) -> int:
    """The bucket a duration of ``ms`` milliseconds is counted in.

    Negative durations (a clock stepping back between two machines) clamp to bucket 0
    rather than failing: the event happened, and "about instantly" is the honest reading.
    NaN has no bucket and raises ValueError; +inf is overflow.
    """
    if math.isnan(ms):
        raise ValueError("a latency cannot be NaN")
    # bisect_left finds the first edge >= ms: the edges are inclusive upper bounds.
    return bisect_left(LATENCY_EDGES_MS, ms)


def bucket_bounds(index: int) -> tuple[float, float]:
    """``(lower, upper)`` of a bucket in ms: lower exclusive (0 inclusive for bucket 0),
    upper inclusive; the overflow bucket's upper bound is ``inf``."""
    if not 0 <= index < BUCKETS:
        raise ValueError(f"bucket index must be in 0..{BUCKETS - 1}")
    lower = 0.0 if index == 0 else float(LATENCY_EDGES_MS[index - 1])
    upper = math.inf if index == OVERFLOW else float(LATENCY_EDGES_MS[index])
    return lower, upper


def histogram(values_ms: Iterable[float]) -> list[int]:
    """Counts per bucket (length :data:`BUCKETS`) of the given durations."""
    counts = [0] * BUCKETS
    for ms in values_ms:
        counts[bucket_of(ms)] += 1
    return counts


def _checked(counts: Sequence[int]) -> Sequence[int]:
    if len(counts) > BUCKETS:
        raise ValueError(f"a histogram has at most {BUCKETS} buckets, got {len(counts)}")
    if any(c < 0 for c in counts):
        raise ValueError("bucket counts cannot be negative")
    return counts


def add(a: Sequence[int], b: Sequence[int]) -> list[int]:
    """The histogram of both ranges: bucket-wise sums, always :data:`BUCKETS` long
    (a shorter input means zeros in its missing tail buckets)."""
    _checked(a)
    _checked(b)
    out = [0] * BUCKETS
    for i, c in enumerate(a):
        out[i] += c
    for i, c in enumerate(b):
        out[i] += c
    return out


def percentile(counts: Sequence[int], q: float) -> float | None:
    """The ``q``-quantile (``0 <= q <= 1``; 0.95 for p95) of a histogram, in ms.

    None when the histogram is empty. The samples of a bucket are taken to be spread
    evenly between its bounds, so the answer is the point where the cumulative count
    reaches ``q * total``, interpolated linearly inside the bucket it falls in, between
    the bucket's lower bound (the previous edge; 0 for bucket 0) and its upper edge.
    ``q = 0`` answers the lower bound of the first non-empty bucket, ``q = 1`` the upper
    edge of the last one. The overflow bucket has no upper edge: an answer falling there
    is the last edge (7 days), a floor rather than an estimate.

    What this guarantees (and the property tests check): the true sample quantile
    (the ``ceil(q * n)``-th smallest sample, the first for ``q = 0``) lies in the very
    bucket the answer is interpolated in, so the error is at most that bucket's width;
    the answer never decreases as ``q`` grows; and the answer for the sum of two
    histograms lies between the answers for each part.

    Arithmetic is exact (``Fraction``) and rounded to float once at the end: rounding is
    monotone, so those guarantees hold to the last bit instead of "up to an epsilon".
    """
    if not 0.0 <= q <= 1.0:  # also refuses NaN
        raise ValueError("q must be between 0 and 1")
    _checked(counts)
    total = sum(counts)
    if total == 0:
        return None
    target = Fraction(q) * total
    below = 0  # samples in the buckets before the current one
    for index, count in enumerate(counts):
        if count and below + count >= target:
            lower, upper = bucket_bounds(index)
            if index == OVERFLOW:
                return lower
            # max(0, ...) only matters for q = 0, where target (0) sits before the bucket.
            inside = max(Fraction(0), target - below) / count
            return float(Fraction(lower) + (Fraction(upper) - Fraction(lower)) * inside)
        below += count
    raise AssertionError("unreachable: the last non-empty bucket reaches the total")
