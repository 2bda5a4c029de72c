"""Quiet hours: midnight spans, weekdays, DST, and properties over many zones."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clarion.domain.quiet_hours import QuietHours, quiet_until
from clarion.errors import ValidationFailed

NY = ZoneInfo("America/New_York")
LISBON = ZoneInfo("Europe/Lisbon")
US = timedelta(microseconds=1)


def qh(start: str, end: str, tz: str = "UTC", days: set[int] | None = None) -> QuietHours:
    s, e = time.fromisoformat(start), time.fromisoformat(end)
    return QuietHours(s, e, tz, frozenset(range(7) if days is None else days))


def test_span_within_a_day() -> None:
    rule = qh("12:00", "14:00")
    assert quiet_until(rule, datetime(2024, 5, 1, 13, tzinfo=UTC)) == datetime(
        2024, 5, 1, 14, tzinfo=UTC
    )
    assert quiet_until(rule, datetime(2024, 5, 1, 12, tzinfo=UTC)) is not None  # start inclusive
    assert quiet_until(rule, datetime(2024, 5, 1, 14, tzinfo=UTC)) is None  # end exclusive
    assert quiet_until(rule, datetime(2024, 5, 1, 11, 59, tzinfo=UTC)) is None


def test_midnight_span_belongs_to_the_day_it_starts() -> None:
    friday_only = qh("22:00", "07:00", "Europe/Lisbon", {4})
    # Friday 2024-05-03 23:00 and Saturday 06:00 Lisbon (+01:00) are quiet.
    end = datetime(2024, 5, 4, 7, tzinfo=LISBON)
    assert quiet_until(friday_only, datetime(2024, 5, 3, 23, tzinfo=LISBON)) == end
    assert quiet_until(friday_only, datetime(2024, 5, 4, 6, tzinfo=LISBON)) == end
    assert quiet_until(friday_only, datetime(2024, 5, 4, 6, tzinfo=LISBON)).tzinfo is UTC  # type: ignore[union-attr]
    # Thursday night is not (Thursday is not listed), nor Friday early morning.
    assert quiet_until(friday_only, datetime(2024, 5, 2, 23, tzinfo=LISBON)) is None
    assert quiet_until(friday_only, datetime(2024, 5, 3, 6, tzinfo=LISBON)) is None
    # Saturday night is not either, even though Saturday morning was quiet.
    assert quiet_until(friday_only, datetime(2024, 5, 4, 23, tzinfo=LISBON)) is None


def test_input_in_another_zone_is_converted() -> None:
    rule = qh("22:00", "07:00", "America/New_York")
    at = datetime(2024, 7, 1, 3, tzinfo=UTC)  # 23:00 EDT on June 30
    assert quiet_until(rule, at) == datetime(2024, 7, 1, 11, tzinfo=UTC)


def test_start_in_skipped_hour_moves_forward() -> None:
    # 2024-03-10: New York jumps 02:00 EST -> 03:00 EDT. 02:30 is read as 03:30 EDT.
    rule = qh("02:30", "05:00", "America/New_York")
    assert quiet_until(rule, datetime(2024, 3, 10, 3, 15, tzinfo=NY)) is None
    assert quiet_until(rule, datetime(2024, 3, 10, 3, 30, tzinfo=NY)) == datetime(
        2024, 3, 10, 9, tzinfo=UTC
    )


def test_end_in_skipped_hour_moves_forward() -> None:
    rule = qh("22:00", "02:30", "America/New_York")
    # Saturday 22:00 EST until Sunday 02:30 -> 03:30 EDT = 07:30 UTC.
    assert quiet_until(rule, datetime(2024, 3, 9, 23, tzinfo=NY)) == datetime(
        2024, 3, 10, 7, 30, tzinfo=UTC
    )


def test_repeated_hour_takes_first_occurrence() -> None:
    # 2024-11-03: New York repeats 01:00-02:00. An end at 01:30 is the first (EDT) one.
    rule = qh("22:00", "01:30", "America/New_York")
    end = quiet_until(rule, datetime(2024, 11, 2, 23, tzinfo=NY))
    assert end == datetime(2024, 11, 3, 5, 30, tzinfo=UTC)  # 01:30 EDT
    second_130 = datetime(2024, 11, 3, 6, 30, tzinfo=UTC)  # 01:30 EST
    assert quiet_until(rule, second_130) is None


def test_span_inside_the_gap_moves_forward_whole() -> None:
    rule = qh("02:10", "02:50", "America/New_York")  # 03:10-03:50 EDT that night
    assert quiet_until(rule, datetime(2024, 3, 10, 7, 10, tzinfo=UTC)) == datetime(
        2024, 3, 10, 7, 50, tzinfo=UTC
    )
    assert quiet_until(rule, datetime(2024, 3, 10, 7, 5, tzinfo=UTC)) is None


def test_span_squeezed_to_nothing_by_dst_is_not_quiet() -> None:
    rule = qh("02:30", "03:15", "America/New_York")  # 03:30 EDT - 03:15 EDT: empty
    for minute in range(0, 180, 5):
        at = datetime(2024, 3, 10, 6, tzinfo=UTC) + timedelta(minutes=minute)
        assert quiet_until(rule, at) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"start": time(9), "end": time(9), "timezone": "UTC"},
        {"start": time(9), "end": time(10), "timezone": "Mars/Olympus"},
        {"start": time(9), "end": time(10), "timezone": "UTC", "weekdays": frozenset({7})},
        {"start": time(9), "end": time(10), "timezone": "UTC", "weekdays": frozenset()},
        {"start": time(9, tzinfo=UTC), "end": time(10), "timezone": "UTC"},
    ],
)
def test_invalid_rules(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationFailed):
        QuietHours(**kwargs)  # type: ignore[arg-type]


def test_json_round_trip_and_errors() -> None:
    rule = QuietHours.from_json(
        {"start": "22:00", "end": "07:00", "weekdays": [0, 1]}, default_timezone="Europe/Lisbon"
    )
    assert rule == qh("22:00", "07:00", "Europe/Lisbon", {0, 1})
    assert QuietHours.from_json(rule.to_json()) == rule
    for bad in (
        {"start": "7am", "end": "09:00"},
        {"start": "22:00", "end": "07:00", "colour": 1},
        {"start": "22:00", "end": "07:00", "timezone": "Nowhere"},
        {"start": "22:00", "end": "07:00", "weekdays": "mon"},
    ):
        with pytest.raises(ValidationFailed):
            QuietHours.from_json(bad)


def test_naive_datetime_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        quiet_until(qh("22:00", "07:00"), datetime(2024, 1, 1))


# -- properties -----------------------------------------------------------------------

ZONES = [
    "UTC",
    "America/New_York",
    "Europe/Lisbon",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "America/Sao_Paulo",
    "Pacific/Apia",
    "Europe/London",
    "America/St_Johns",
]
times = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))
instants = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31)).map(
    lambda d: d.replace(tzinfo=UTC)
)


@st.composite
def rule_and_instant(draw: st.DrawFn) -> tuple[QuietHours, datetime]:
    start, end = draw(times), draw(times)
    if start == end:
        end = time((end.hour + 1) % 24, end.minute)
    rule = QuietHours(
        start, end, draw(st.sampled_from(ZONES)), draw(st.frozensets(st.integers(0, 6), min_size=1))
    )
    return rule, draw(instants)


@settings(max_examples=200, deadline=None)
@given(rule_and_instant())
def test_end_is_after_at_and_not_quiet_itself(case: tuple[QuietHours, datetime]) -> None:
    rule, at = case
    end = quiet_until(rule, at)
    if end is None:
        return
    assert end.tzinfo is UTC
    assert at < end <= at + timedelta(hours=25)
    assert quiet_until(rule, end) is None
    assert quiet_until(rule, end + US) is None
    assert quiet_until(rule, end - US) == end


@settings(max_examples=200, deadline=None)
@given(rule_and_instant())
def test_every_day_rule_over_a_week_never_defers_more_than_25h(
    case: tuple[QuietHours, datetime],
) -> None:
    rule, at = case
    rule = QuietHours(rule.start, rule.end, rule.timezone)
    for hours in range(0, 7 * 24, 5):
        moment = at + timedelta(hours=hours, minutes=7)
        end = quiet_until(rule, moment)
        assert end is None or moment < end <= moment + timedelta(hours=25)


def _oracle(rule: QuietHours, at: datetime) -> bool:
    """Wall-clock membership, valid for zones without DST."""
    local = at.astimezone(ZoneInfo(rule.timezone))
    t, day, prev = local.time().replace(tzinfo=None), local.weekday(), (local.weekday() - 1) % 7
    if rule.end > rule.start:
        return day in rule.weekdays and rule.start <= t < rule.end
    return (day in rule.weekdays and t >= rule.start) or (prev in rule.weekdays and t < rule.end)


@settings(max_examples=200, deadline=None)
@given(rule_and_instant(), st.sampled_from(["UTC", "Asia/Kolkata", "Asia/Tokyo", "Etc/GMT+5"]))
def test_matches_wall_clock_oracle_without_dst(
    case: tuple[QuietHours, datetime], zone: str
) -> None:
    rule, at = case
    rule = QuietHours(rule.start, rule.end, zone, rule.weekdays)
    assert (quiet_until(rule, at) is not None) == _oracle(rule, at)
