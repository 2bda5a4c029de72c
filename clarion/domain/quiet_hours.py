"""Quiet hours: local wall-clock spans during which loud channels wait.

A span is ``start``-``end`` in the user's timezone on each weekday of ``weekdays``
(0 = Monday). When ``end <= start`` the span crosses midnight and belongs to the weekday
on which it *starts*: ``22:00-07:00`` on Friday covers Friday 22:00 to Saturday 07:00,
whether or not Saturday is listed. ``start == end`` is refused (an empty span and a
24-hour span are both plausible readings; ``00:00-23:59`` says the second plainly).

DST follows :mod:`clarion.domain.localtime`: a start or end inside a skipped hour moves
forward by the jump (RFC 5545), a start or end inside a repeated hour is its first
occurrence. A span that DST squeezes to nothing is simply not quiet that day.

Spans of consecutive days never touch (``start != end``), so the instant a span ends is
never quiet: a notification deferred to that instant goes out then.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from clarion.domain.localtime import (
    format_hhmm,
    load_timezone,
    parse_hhmm,
    require_aware,
    resolve_local,
)
from clarion.errors import ValidationFailed

__all__ = ["ALL_WEEKDAYS", "QuietHours", "quiet_until"]

ALL_WEEKDAYS: frozenset[int] = frozenset(range(7))


@dataclass(frozen=True, slots=True)
class QuietHours:
    """One quiet-hours rule; validated on construction so a bad one cannot exist."""

    start: time
    end: time
    timezone: str
    weekdays: frozenset[int] = ALL_WEEKDAYS
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problems: list[dict[str, str]] = []
        for name in ("start", "end"):
            value = getattr(self, name)
            if not isinstance(value, time) or value.tzinfo is not None:
                problems.append({"field": name, "problem": "must be a naive local time"})
        if not problems and self.start.replace(microsecond=0) == self.end.replace(microsecond=0):
            problems.append(
                {"field": "end", "problem": "must differ from start (use 00:00-23:59 for a day)"}
            )
        weekdays = frozenset(self.weekdays)
        if not weekdays or not weekdays <= ALL_WEEKDAYS:
            problems.append({"field": "weekdays", "problem": "must be a non-empty subset of 0..6"})
        if problems:
            raise ValidationFailed("invalid quiet hours", details=problems)
        object.__setattr__(self, "weekdays", weekdays)
        object.__setattr__(self, "_zone", load_timezone(self.timezone))

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, default_timezone: str = "UTC") -> QuietHours:
        """Build from ``{"start": "22:00", "end": "07:00", "timezone"?, "weekdays"?}``.

        ``timezone`` defaults to the caller's (the user's preference timezone) and
        ``weekdays`` to every day.
        """
        if not isinstance(data, Mapping):
            raise ValidationFailed(
                "quiet_hours must be an object",
                details=[{"field": "quiet_hours", "problem": "must be an object"}],
            )
        unknown = set(data) - {"start", "end", "timezone", "weekdays"}
        if unknown:
            raise ValidationFailed(
                "unknown quiet_hours fields",
                details=[
                    {"field": f"quiet_hours.{k}", "problem": "unknown field"}
                    for k in sorted(unknown)
                ],
            )
        start = parse_hhmm(data.get("start"), field="quiet_hours.start")
        end = parse_hhmm(data.get("end"), field="quiet_hours.end")
        weekdays_raw = data.get("weekdays", sorted(ALL_WEEKDAYS))
        if not isinstance(weekdays_raw, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) for d in weekdays_raw
        ):
            raise ValidationFailed(
                "quiet_hours.weekdays must be a list of integers",
                details=[{"field": "quiet_hours.weekdays", "problem": "must be a list of 0..6"}],
            )
        timezone = data.get("timezone", default_timezone)
        load_timezone(timezone, field="quiet_hours.timezone")
        return cls(start=start, end=end, timezone=timezone, weekdays=frozenset(weekdays_raw))

    def to_json(self) -> dict[str, Any]:
        return {
            "start": format_hhmm(self.start),
            "end": format_hhmm(self.end),
            "timezone": self.timezone,
            "weekdays": sorted(self.weekdays),
        }

    def spans(self, around: datetime) -> Iterable[tuple[datetime, datetime]]:
        """The UTC ``[start, end)`` spans that could contain ``around``.

        Spans are shorter than a day of wall time, so only those starting on the local
        day of ``around`` or the two before it can reach it.
        """
        local_day = require_aware(around).astimezone(self._zone).date()
        for back in (2, 1, 0):
            day = local_day - timedelta(days=back)
            if day.weekday() not in self.weekdays:
                continue
            begins = resolve_local(day, self.start, self._zone)
            end_day = day + timedelta(days=1) if self.crosses_midnight else day
            ends = resolve_local(end_day, self.end, self._zone)
            if ends > begins:
                yield begins, ends


def quiet_until(qh: QuietHours, at: datetime) -> datetime | None:
    """When the quiet period containing ``at`` ends (aware, UTC), or None if ``at`` is not quiet.

    ``at`` must be aware. Start is inclusive, end exclusive.
    """
    at_utc = require_aware(at).astimezone(UTC)
    ends = [end for begins, end in qh.spans(at_utc) if begins <= at_utc < end]
    return max(ends) if ends else None
