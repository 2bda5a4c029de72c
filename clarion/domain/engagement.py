"""A user's engagement score, 0-100, from what they received and what they did with it.

The formula (also in docs/analytics.md, section "Engagement score")::

    seen_part    = min(seen / received, 1)
    read_part    = min(read / received, 1)
    click_part   = min(clicked / received / 0.25, 1)     full marks at 25 % clicked
    convert_part = min(converted / received / 0.10, 1)   full marks at 10 % converted
    activity     = 15 seen_part + 35 read_part + 30 click_part + 20 convert_part
    recency      = 0.5 ** (days_since_last_active / 14)  (1 when unknown)
    score        = activity * recency

Why these choices: reading is the main sign that notifications are useful, so it weighs
most; clicks and conversions are stronger signals but rarer, so they get full marks well
below 100 % (a user clicking a quarter of what they get is as engaged as it gets);
seen weighs least because a glance at the inbox is nearly free. Recency halves the score
every 14 days without activity, so a user who was keen a year ago and silent since does
not look engaged today. ``days_since_last_active`` None means "not known" (no activity
recorded yet), and applies no decay: the rates already say whether they did anything.

Pure: no I/O, no clock; the caller works out the days.
"""

from __future__ import annotations

import math

SEEN_WEIGHT = 15.0
READ_WEIGHT = 35.0
CLICK_WEIGHT = 30.0
CONVERT_WEIGHT = 20.0
#: click and conversion rates that earn their full weight
CLICK_FULL_RATE = 0.25
CONVERT_FULL_RATE = 0.10
#: days without activity that halve the score
HALF_LIFE_DAYS = 14.0


def engagement_score(
    received: int,
    seen: int,
    read: int,
    clicked: int,
    converted: int,
    days_since_last_active: float | None,
) -> float:
    """The score described in the module docstring. 0 when nothing was received.

    Counts above ``received`` (a notification read twice, a conversion reported for a
    user without naming a notification) are capped by the ``min(..., 1)`` of each part;
    negative days (a clock ahead of ours) count as 0. Negative counts and NaN days raise
    ValueError.
    """
    if min(received, seen, read, clicked, converted) < 0:
        raise ValueError("counts cannot be negative")
    if days_since_last_active is not None and math.isnan(days_since_last_active):
        raise ValueError("days_since_last_active cannot be NaN")
    if received == 0:
        return 0.0
    activity = (
        SEEN_WEIGHT * min(seen / received, 1.0)
        + READ_WEIGHT * min(read / received, 1.0)
        + CLICK_WEIGHT * min(clicked / received / CLICK_FULL_RATE, 1.0)
        + CONVERT_WEIGHT * min(converted / received / CONVERT_FULL_RATE, 1.0)
    )
    if days_since_last_active is None:
        recency = 1.0
    else:
        recency = 0.5 ** (max(days_since_last_active, 0.0) / HALF_LIFE_DAYS)
    return min(max(activity * recency, 0.0), 100.0)
