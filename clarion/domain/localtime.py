"""Wall-clock helpers shared by quiet hours, preferences and digests.

Users think in local wall-clock time ("quiet from 22:00", "digest at 09:00") while the
service stores and compares aware UTC instants. Turning one into the other is where DST
bites, so the rule lives here once:

* a wall time that does not exist (skipped by a spring-forward jump) is read with the
  offset in force *before* the jump, so it moves forward by the length of the jump
  (02:30 on a night that jumps 02:00 -> 03:00 becomes 03:30) — the RFC 5545 rule;
* a wall time that happens twice (fall-back) means its *first* occurrence.

Both are what ``datetime.combine(day, t, tzinfo=zone)`` with ``fold=0`` already does with
:mod:`zoneinfo`; :func:`resolve_local` only names the rule so callers don't re-derive it.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from clarion.errors import ValidationFailed

__all__ = [
    "format_hhmm",
    "load_timezone",
    "parse_hhmm",
    "require_aware",
    "resolve_local",
]

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def load_timezone(name: str, *, field: str = "timezone") -> ZoneInfo:
    """The IANA zone called ``name``, or ``ValidationFailed`` naming ``field``.

    Zone names come from users, so a bad one is a 422, never a 500.
    """
    if not isinstance(name, str) or not name or len(name) > 64 or name.startswith("/"):
        raise ValidationFailed(
            f"unknown timezone {name!r}",
            details=[{"field": field, "problem": "must be an IANA timezone such as Europe/Lisbon"}],
        )
    try:
        return _zone(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValidationFailed(
            f"unknown timezone {name!r}",
            details=[{"field": field, "problem": "must be an IANA timezone such as Europe/Lisbon"}],
        ) from exc


def parse_hhmm(value: object, *, field: str) -> time:
    """Parse a local ``"HH:MM"`` (24-hour) into a naive :class:`time`."""
    match = _HHMM.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValidationFailed(
            f"{field} must be HH:MM",
            details=[{"field": field, "problem": "must be a 24-hour time HH:MM, e.g. 09:00"}],
        )
    return time(int(match.group(1)), int(match.group(2)))


def format_hhmm(value: time) -> str:
    return f"{value.hour:02d}:{value.minute:02d}"


def require_aware(at: datetime, *, name: str = "at") -> datetime:
    """Refuse naive datetimes: they are a programming error, not user input."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return at


def resolve_local(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The aware UTC instant of wall-clock ``wall`` on ``day`` in ``zone`` (see module doc)."""
    return datetime.combine(day, wall.replace(tzinfo=None, fold=0), tzinfo=zone).astimezone(UTC)
