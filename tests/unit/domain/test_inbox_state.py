"""Read and seen from a notification's own columns and its user's watermarks."""

from __future__ import annotations

from datetime import UTC, datetime

from clarion.domain.inbox_state import InboxMarks, effective_times, is_read, is_seen

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 1, 2, tzinfo=UTC)
MARKS = InboxMarks(
    unread=0, unseen=0, read_watermark=10, seen_watermark=20, read_all_at=T1, seen_all_at=T0
)


def test_read_by_its_own_time_or_below_the_watermark_unless_forced_unread() -> None:
    assert is_read(50, T0, False, MARKS)
    assert is_read(10, None, False, MARKS)
    assert not is_read(10, None, True, MARKS)
    assert not is_read(11, None, False, MARKS)


def test_seen_below_the_seen_watermark_or_when_read() -> None:
    assert is_seen(20, None, None, False, MARKS)
    assert is_seen(50, None, T0, False, MARKS)
    assert is_seen(50, T0, None, False, MARKS)
    assert not is_seen(21, None, None, False, MARKS)


def test_effective_times_take_the_mark_all_times() -> None:
    assert effective_times(5, None, None, False, MARKS) == (T0, T1)
    assert effective_times(15, None, None, False, MARKS) == (T0, None)
    assert effective_times(50, None, None, False, MARKS) == (None, None)
    assert effective_times(50, None, T0, False, MARKS) == (T0, T0)
    no_times = InboxMarks(0, 0, 10, 0, None, None)
    assert effective_times(5, None, None, False, no_times) == (None, None)
