"""How a time range is read from the rollups: whole days from the daily table, the edge
hours from the hourly one, and today from the daily table when the range runs past now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from clarion.store.analytics import split_range

D = datetime(2026, 12, 1, tzinfo=UTC)
H = timedelta(hours=1)


def test_whole_days_and_edge_hours() -> None:
    assert split_range(D + 5 * H, D + 3 * 24 * H + 2 * H) == [
        ("hour", D + 5 * H, D + 24 * H),
        ("day", D + 24 * H, D + 72 * H),
        ("hour", D + 72 * H, D + 74 * H),
    ]


def test_within_one_day_is_hours() -> None:
    assert split_range(D + 3 * H, D + 9 * H) == [("hour", D + 3 * H, D + 9 * H)]
    assert split_range(D + 3 * H, D + 3 * H) == []


def test_a_range_past_now_reads_today_from_the_daily_table() -> None:
    now = D + 72 * H + 30 * 60 * 1000 * timedelta(microseconds=1)  # 00:30 on day 4
    got = split_range(D + 5 * H, D + 74 * H, now)
    assert got == [("hour", D + 5 * H, D + 24 * H), ("day", D + 24 * H, D + 96 * H)]
    # Not when the range ends before now: the rest of that day has happened.
    assert split_range(D + 5 * H, D + 74 * H, D + 80 * H)[-1] == ("hour", D + 72 * H, D + 74 * H)
