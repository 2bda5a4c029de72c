"""Whether a notification is read or seen, from its own columns and its user's marks.

Mark-all-read moves the user's watermarks instead of rewriting rows (``store/schema.py``):
a notification is read when ``read_at`` is set, or when its id is at or below the read
watermark and it was not explicitly marked unread afterwards (``forced_unread``); seen
works the same way with the seen watermark, and whatever is read is seen. The functions
take the four columns as values, so the inbox's typed rows and the rows a page encodes
straight to JSON share them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class InboxMarks:
    """A user's counters and watermarks (columns of ``users``)."""

    unread: int
    unseen: int
    read_watermark: int
    seen_watermark: int
    read_all_at: datetime | None
    seen_all_at: datetime | None


NO_MARKS = InboxMarks(0, 0, 0, 0, None, None)


def is_read(
    notification_id: int, read_at: datetime | None, forced_unread: bool, marks: InboxMarks
) -> bool:
    return read_at is not None or (notification_id <= marks.read_watermark and not forced_unread)


def is_seen(
    notification_id: int,
    seen_at: datetime | None,
    read_at: datetime | None,
    forced_unread: bool,
    marks: InboxMarks,
) -> bool:
    return (
        seen_at is not None
        or notification_id <= marks.seen_watermark
        or is_read(notification_id, read_at, forced_unread, marks)
    )


def effective_times(
    notification_id: int,
    seen_at: datetime | None,
    read_at: datetime | None,
    forced_unread: bool,
    marks: InboxMarks,
) -> tuple[datetime | None, datetime | None]:
    """(seen_at, read_at) as a client sees them, watermarks applied."""
    seen = is_seen(notification_id, seen_at, read_at, forced_unread, marks)
    if read_at is None and is_read(notification_id, None, forced_unread, marks):
        read_at = marks.read_all_at
    if seen_at is None and seen:
        seen_at = marks.seen_all_at or read_at
    return seen_at, read_at
