"""Trend helpers: anomalous points of a time series, and the period to compare with.

Anomalies use a robust z-score against a trailing baseline: the median and the median
absolute deviation (MAD) of the points just before, rather than their mean and standard
deviation, because one outage or one marketing blast in the baseline would inflate a
standard deviation and hide the next one, while the median and MAD barely move
(Iglewicz and Hoaglin's modified z-score; 3.5 is their suggested cut-off).

Pure: no I/O, no clock; the caller passes the series and the times.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from statistics import median

#: MAD * 1.4826 estimates the standard deviation of normally distributed data, so the
#: robust z-score reads like an ordinary one.
MAD_SCALE = 1.4826

#: When the baseline's MAD is 0 (at least half the points equal, e.g. a quiet series of
#: zeros), the z-score is undefined; a point is then anomalous when it differs from the
#: median by more than max(FLAT_MIN_DIFF, FLAT_REL_DIFF * |median|): "0 then 1" is noise,
#: "0 then 2" or "100 then 151" is not.
FLAT_MIN_DIFF = 1.0
FLAT_REL_DIFF = 0.5


def _usable(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def flag_anomalies(
    values: Sequence[float | None],
    *,
    baseline: int = 24,
    threshold: float = 3.5,
    min_history: int = 6,
) -> list[bool]:
    """One flag per point: True when the point is anomalous against its trailing baseline.

    For point ``i`` the baseline is the (up to) ``baseline`` points ``values[i-baseline:i]``
    without the missing ones (None, NaN, infinities). With fewer than ``min_history``
    usable points the point is not judged (False), nor is a missing point itself.
    Otherwise, with ``m`` the baseline's median and ``MAD`` the median of ``|v - m|``:

    - ``MAD > 0``: anomalous when ``|x - m| / (1.4826 * MAD) > threshold``;
    - ``MAD = 0``: anomalous when ``|x - m| > max(1, 0.5 * |m|)``.

    Earlier anomalies stay in later baselines: the median and MAD are robust to a few of
    them, and dropping them would make a lasting change of level look anomalous forever
    instead of becoming the new normal after about half a baseline.
    """
    if baseline < 1:
        raise ValueError("baseline must be at least 1")
    if not 1 <= min_history <= baseline:
        raise ValueError("min_history must be between 1 and baseline")
    if not threshold > 0:
        raise ValueError("threshold must be positive")
    flags: list[bool] = []
    for i, x in enumerate(values):
        if x is None or not math.isfinite(x):
            flags.append(False)
            continue
        history = [v for v in values[max(0, i - baseline) : i] if v is not None and _usable(v)]
        if len(history) < min_history:
            flags.append(False)
            continue
        centre = median(history)
        mad = median(abs(v - centre) for v in history)
        distance = abs(x - centre)
        if mad > 0:
            flags.append(distance / (MAD_SCALE * mad) > threshold)
        else:
            flags.append(distance > max(FLAT_MIN_DIFF, FLAT_REL_DIFF * abs(centre)))
    return flags


def previous_period(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The period of the same length just before ``[start, end)``: ``(start - length,
    start)``.

    The length is measured in elapsed time (in UTC for aware datetimes), so a period
    across a DST change is compared with one of the same number of hours rather than of
    the same wall-clock span; the answer keeps ``start``'s time zone. Raises ValueError
    when ``end`` is not after ``start``.
    """
    if (start.tzinfo is None) != (end.tzinfo is None):
        raise ValueError("start and end must both be aware or both naive")
    if start.tzinfo is None:
        if end <= start:
            raise ValueError("end must be after start")
        return start - (end - start), start
    # Aware datetimes sharing a tzinfo subtract as wall-clock times; go through UTC.
    s, e = start.astimezone(UTC), end.astimezone(UTC)
    if e <= s:
        raise ValueError("end must be after start")
    return (s - (e - s)).astimezone(start.tzinfo), start
