"""How a time range is read from the rollups: whole days from the daily table, edge
hours from the hourly one (or the day less the hours outside, when shorter), and today
from the daily table when the range runs past now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from clarion.store.rollup_reads import split_range

D = datetime(2026, 12, 1, tzinfo=UTC)
H = timedelta(hours=1)


def _hours(pieces: list[tuple[str, datetime, datetime, int]]) -> int:
    return sum(int((hi - lo) / H) for grain, lo, hi, _ in pieces if grain == "hour")


def test_whole_days_and_short_edges_as_hours() -> None:
    assert split_range(D + 20 * H, D + 3 * 24 * H + 2 * H) == [
        ("hour", D + 20 * H, D + 24 * H, 1),
        ("day", D + 24 * H, D + 72 * H, 1),
        ("hour", D + 72 * H, D + 74 * H, 1),
    ]


def test_long_edges_as_the_day_less_the_hours_outside() -> None:
    got = split_range(D + 2 * H, D + 3 * 24 * H + 22 * H)
    assert got == [
        ("day", D, D + 24 * H, 1),
        ("hour", D, D + 2 * H, -1),
        ("day", D + 24 * H, D + 72 * H, 1),
        ("day", D + 72 * H, D + 96 * H, 1),
        ("hour", D + 94 * H, D + 96 * H, -1),
    ]
    assert _hours(got) == 4


def test_within_one_day() -> None:
    assert split_range(D + 3 * H, D + 9 * H) == [("hour", D + 3 * H, D + 9 * H, 1)]
    assert split_range(D + 3 * H, D + 3 * H) == []
    now = D + 20 * H + 30 * timedelta(minutes=1)
    assert split_range(D + 2 * H, D + 21 * H, now) == [
        ("day", D, D + 24 * H, 1),
        ("hour", D, D + 2 * H, -1),
    ]


def test_the_last_24_hours_across_midnight() -> None:
    now = D + 24 * H + 14 * H + 30 * timedelta(minutes=1)  # 14:30 on day 2
    got = split_range(D + 14 * H, D + 39 * H, now)
    assert got == [("hour", D + 14 * H, D + 24 * H, 1), ("day", D + 24 * H, D + 48 * H, 1)]


def test_a_range_past_now_reads_today_from_the_daily_table() -> None:
    now = D + 72 * H + 30 * timedelta(minutes=1)  # 00:30 on day 4
    got = split_range(D + 20 * H, D + 73 * H, now)
    assert got == [
        ("hour", D + 20 * H, D + 24 * H, 1),
        ("day", D + 24 * H, D + 72 * H, 1),
        ("day", D + 72 * H, D + 96 * H, 1),
    ]


def test_every_range_sums_to_exactly_its_hours() -> None:
    """Each hour of the range counted once, no hour outside it (days count 24 hours)."""
    for s in range(0, 80, 3):
        for e in range(s, 100, 5):
            start, end = D + s * H, D + e * H
            covered: dict[datetime, int] = {}
            for _grain, lo, hi, sign in split_range(start, end):
                step = H
                at = lo
                while at < hi:
                    covered[at] = covered.get(at, 0) + sign
                    at += step
            assert {k for k, v in covered.items() if v} == {D + h * H for h in range(s, e)}
            assert all(v in (0, 1) for v in covered.values())
