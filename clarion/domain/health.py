"""The health score: 0-100 from the facts of a time window, and the worst window's verdict.

A window's score is the weighted mean of eight components (the weights sum to 100, see
:data:`WEIGHTS`). Each component turns one measured figure into 0-100 with a
piecewise-linear function of that figure, given by its breakpoints below: 100 while the
figure is as good as an operator should expect, falling linearly between breakpoints, 0
once it is clearly broken, flat beyond the last breakpoint. The same text is in
docs/analytics.md, section "Health score"; keep the two together.

Two kinds of component:

- **event components** judge what happened in the window (delivery success, dead
  letters, latency, provider errors, opt-outs, read-rate trend). A window with fewer
  than ``Targets.min_events`` events (accepted + delivered + dead + failed attempts)
  cannot judge them: ten notifications with one dead letter is not a 10 % dead-letter
  rate worth paging anyone. In such a window those components score 100 (their figures
  are still shown) and the window says ``enough_data=False``.
- **state components** judge the service now (outbox backlog age, degraded
  dependencies): they need no events and always count.

:func:`combine` takes the lowest window score (the worst window sets the score, as
published deliverability scores do); see there for windows without enough data.

Why every piece is monotone: the property tests check that making any bad input worse
never raises the score. The piecewise functions are monotone, counts that move a window
over ``min_events`` can only replace a neutral 100 by a real (lower or equal) score, and
the weighted sum and the minimum keep both.

Pure: no I/O, no clock; the caller measures the facts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

# -- component names and weights --------------------------------------------------------

DELIVERY_SUCCESS = "delivery_success"
DEAD_LETTERS = "dead_letters"
LATENCY = "latency"
BACKLOG_AGE = "backlog_age"
PROVIDER_ERRORS = "provider_errors"
OPT_OUTS = "opt_outs"
READ_RATE_TREND = "read_rate_trend"
DEGRADED_DEPENDENCIES = "degraded_dependencies"

#: Points of the 100 each component is worth. Delivery success weighs most because it
#: is what a notification service is for; dependencies and latency next because they are
#: what users feel first; opt-outs and the read trend are engagement signals that move
#: slowly and often for product rather than operational reasons, so they weigh least.
WEIGHTS: Mapping[str, float] = {
    DELIVERY_SUCCESS: 25.0,
    DEAD_LETTERS: 10.0,
    LATENCY: 15.0,
    BACKLOG_AGE: 10.0,
    PROVIDER_ERRORS: 10.0,
    OPT_OUTS: 10.0,
    READ_RATE_TREND: 5.0,
    DEGRADED_DEPENDENCIES: 15.0,
}

#: Components judged from the window's events; neutral (100) without enough data.
EVENT_COMPONENTS: frozenset[str] = frozenset(
    {DELIVERY_SUCCESS, DEAD_LETTERS, LATENCY, PROVIDER_ERRORS, OPT_OUTS, READ_RATE_TREND}
)

# -- breakpoints (figure, score); x ascending -----------------------------------------

Points = tuple[tuple[float, float], ...]

#: delivered / (delivered + dead): 100 from 99 %, 50 at 95 %, 0 at 90 % and below.
DELIVERY_SUCCESS_POINTS: Points = ((0.90, 0.0), (0.95, 50.0), (0.99, 100.0))
#: dead / accepted: 100 up to 0.1 %, 60 at 1 %, 0 from 5 %.
DEAD_LETTER_POINTS: Points = ((0.001, 100.0), (0.01, 60.0), (0.05, 0.0))
#: worst channel's p95 / its target: 100 up to 1x, 50 at 2x, 0 from 4x.
LATENCY_RATIO_POINTS: Points = ((1.0, 100.0), (2.0, 50.0), (4.0, 0.0))
#: oldest due delivery's age / the backlog target (60 s): 100 up to 1x, 50 at 5x (5 min),
#: 0 from 30x (30 min).
BACKLOG_RATIO_POINTS: Points = ((1.0, 100.0), (5.0, 50.0), (30.0, 0.0))
#: worst provider's errors / attempts: 100 up to 1 %, 50 at 5 %, 0 from 20 %.
PROVIDER_ERROR_POINTS: Points = ((0.01, 100.0), (0.05, 50.0), (0.20, 0.0))
#: unsubscribed / accepted: 100 up to 0.2 %, 50 at 0.5 %, 0 from 2 %.
OPT_OUT_POINTS: Points = ((0.002, 100.0), (0.005, 50.0), (0.02, 0.0))
#: relative fall of the read rate against the previous period, (previous - now) /
#: previous: 100 up to a 10 % fall (and for any rise), 50 at 25 %, 0 from 50 %.
READ_FALL_POINTS: Points = ((0.10, 100.0), (0.25, 50.0), (0.50, 0.0))
#: each degraded dependency costs 50 points of this component: 0 -> 100, 1 -> 50, 2+ -> 0.
DEGRADED_COST = 50.0

#: Default p95 targets per channel, in ms: what a user of each channel would call "on
#: time". In-app and WebSocket are a database write and a frame away; webhooks wait on
#: the receiver; push and SMS go through a gateway; email through SMTP queues.
DEFAULT_LATENCY_TARGETS_MS: Mapping[str, float] = {
    "in_app": 1_000.0,
    "websocket": 1_000.0,
    "webhook": 5_000.0,
    "push": 10_000.0,
    "sms": 30_000.0,
    "email": 60_000.0,
    "apprise": 30_000.0,
}


def _default_latency_targets() -> Mapping[str, float]:
    return dict(DEFAULT_LATENCY_TARGETS_MS)


@dataclass(frozen=True, slots=True)
class Targets:
    """What "good" means. ``latency_p95_ms`` per channel (a channel missing from it is
    held to the most lenient target there); ``backlog_age_s`` the age the oldest due
    delivery may reach; ``min_events`` the events a window needs before its event
    components count, and the attempts a provider needs before its error rate does."""

    latency_p95_ms: Mapping[str, float] = field(default_factory=_default_latency_targets)
    backlog_age_s: float = 60.0
    min_events: int = 20

    def __post_init__(self) -> None:
        if any(not t > 0 for t in self.latency_p95_ms.values()):
            raise ValueError("latency targets must be positive")
        if not self.backlog_age_s > 0:
            raise ValueError("backlog_age_s must be positive")
        if self.min_events < 0:
            raise ValueError("min_events cannot be negative")

    def latency_target_ms(self, channel: str) -> float:
        target = self.latency_p95_ms.get(channel)
        if target is not None:
            return target
        # An unknown channel (a new one, before anyone set its target): the most lenient
        # target known, so it is not judged by in-app standards; 60 s with no targets.
        return max(self.latency_p95_ms.values(), default=60_000.0)


@dataclass(frozen=True, slots=True)
class WindowFacts:
    """What happened in one window (``"1h"``, ``"24h"``, ``"7d"``...), as counted by the
    rollups, plus the service's state now.

    ``accepted``: notifications accepted in the window. ``delivered``: deliveries that
    reached the provider (delivered or sent). ``dead``: dead letters. ``failed_attempts``:
    attempts that failed (retried or not). ``unsubscribed``: opt-outs.
    ``latency_p95_ms``: accepted -> delivered p95 per channel, None for a channel without
    deliveries. ``provider_attempts``: provider -> (attempts, errors). ``read_rate`` and
    ``previous_read_rate``: reads / notifications in this window and in the equal window
    before it. ``backlog_oldest_age_s``: age of the oldest due, undelivered delivery now
    (0 when the outbox is empty). ``degraded``: names of dependencies degraded now
    (``"database"``, ``"redis"``, ...).
    """

    window: str
    accepted: int
    delivered: int
    dead: int
    failed_attempts: int
    unsubscribed: int
    latency_p95_ms: Mapping[str, float | None]
    provider_attempts: Mapping[str, tuple[int, int]]
    read_rate: float | None
    previous_read_rate: float | None
    backlog_oldest_age_s: float
    degraded: Sequence[str]

    def __post_init__(self) -> None:
        counts = (self.accepted, self.delivered, self.dead, self.failed_attempts)
        if min(*counts, self.unsubscribed) < 0:
            raise ValueError("counts cannot be negative")
        for attempts, errors in self.provider_attempts.values():
            if attempts < 0 or errors < 0:
                raise ValueError("provider attempts and errors cannot be negative")
        # NaN compares false with everything and would slip through every threshold.
        figures = [self.backlog_oldest_age_s, self.read_rate, self.previous_read_rate]
        figures += self.latency_p95_ms.values()
        if any(x is not None and math.isnan(x) for x in figures):
            raise ValueError("a figure cannot be NaN")

    @property
    def events(self) -> int:
        """The events that decide whether the window has enough data."""
        return self.accepted + self.delivered + self.dead + self.failed_attempts


@dataclass(frozen=True, slots=True)
class Component:
    """One part of a window's score. ``figure`` is the measured value behind ``score``
    (a rate 0-1, ms, seconds, a count; None when there was nothing to measure),
    ``target`` a short human text, ``advice`` what to do when the score is low."""

    name: str
    weight: float
    score: float
    figure: float | None
    target: str
    advice: str


@dataclass(frozen=True, slots=True)
class WindowScore:
    window: str
    score: float
    components: tuple[Component, ...]
    enough_data: bool


@dataclass(frozen=True, slots=True)
class HealthScore:
    """``score``: the lowest window score. ``worst_window``: the window with enough data
    that scored lowest; None when no window had enough data."""

    score: float
    worst_window: str | None
    windows: tuple[WindowScore, ...]


# -- the piecewise-linear functions -----------------------------------------------------


def piecewise(x: float, points: Sequence[tuple[float, float]]) -> float:
    """Linear interpolation through ``points`` (x ascending), flat outside them.

    Each float step (subtract, divide, multiply, add) is monotone, so the result is
    monotone in ``x`` whenever the points are; the final clamp keeps rounding inside the
    points' range.
    """
    if math.isnan(x):
        raise ValueError("cannot score NaN")
    (x0, y0), (xn, yn) = points[0], points[-1]
    if x <= x0:
        return y0
    if x >= xn:
        return yn
    for (xa, ya), (xb, yb) in pairwise(points):
        if x <= xb:
            y = ya + (yb - ya) * ((x - xa) / (xb - xa))
            return min(max(y, min(ya, yb)), max(ya, yb))
    raise AssertionError("unreachable: x < the last point")


def _rate(part: int, whole: int) -> float | None:
    """``part / whole`` capped at 1; 1 when ``whole`` is 0 but ``part`` is not (dead
    letters of notifications accepted before the window still count against it)."""
    if part == 0:
        return 0.0 if whole else None
    return min(1.0, part / whole) if whole else 1.0


def _percent(rate: float) -> str:
    return f"{rate * 100:g} %"


def _duration(ms: float) -> str:
    if ms >= 60_000:
        return f"{ms / 60_000:g} min"
    if ms >= 1_000:
        return f"{ms / 1_000:g} s"
    return f"{ms:g} ms"


# -- the components ---------------------------------------------------------------------


def _delivery_success(f: WindowFacts) -> Component:
    resolved = f.delivered + f.dead
    rate = f.delivered / resolved if resolved else None
    return Component(
        DELIVERY_SUCCESS,
        WEIGHTS[DELIVERY_SUCCESS],
        100.0 if rate is None else piecewise(rate, DELIVERY_SUCCESS_POINTS),
        rate,
        "≥ 99 % of finished deliveries delivered",
        "Open the top failure reasons in the dashboard. Many 'permanent' failures on one "
        "channel usually mean bad contacts (invalid addresses, expired push subscriptions): "
        "clean them up; a provider answering 5xx or timing out is an outage on its side "
        "(check its status page, consider a fallback channel); 401/403 means its "
        "credentials expired.",
    )


def _dead_letters(f: WindowFacts) -> Component:
    rate = _rate(f.dead, f.accepted)
    return Component(
        DEAD_LETTERS,
        WEIGHTS[DEAD_LETTERS],
        100.0 if rate is None else piecewise(rate, DEAD_LETTER_POINTS),
        rate,
        "≤ 0.1 % of accepted notifications dead-lettered",
        "List the dead deliveries (GET /api/v1/deliveries?status=dead) and their last "
        "error. If they died of a provider outage that is now over, retry them; if of "
        "permanent errors, fix the contacts or the template; if they ran out of attempts "
        "during long outages, raise the retry budget.",
    )


def _latency(f: WindowFacts, t: Targets) -> Component:
    worst: tuple[float, str, float, float] | None = None  # (score, channel, p95, target)
    for channel, p95 in sorted(f.latency_p95_ms.items()):
        if p95 is None:
            continue
        target = t.latency_target_ms(channel)
        score = piecewise(max(p95, 0.0) / target, LATENCY_RATIO_POINTS)
        if worst is None or score < worst[0]:
            worst = (score, channel, p95, target)
    if worst is None:
        text = "p95 accepted → delivered within each channel's target"
        return Component(LATENCY, WEIGHTS[LATENCY], 100.0, None, text, _LATENCY_ADVICE)
    score, channel, p95, target = worst
    text = f"p95 ≤ {_duration(target)} on {channel} (the worst channel)"
    return Component(LATENCY, WEIGHTS[LATENCY], score, p95, text, _LATENCY_ADVICE)


_LATENCY_ADVICE = (
    "Compare the channel's latency with the backlog age: if deliveries wait in the outbox, "
    "add workers or raise their concurrency; if they wait on the provider, look at its "
    "response times and rate limits (429s), and at retries that push the p95 up."
)


def _backlog(f: WindowFacts, t: Targets) -> Component:
    age = max(f.backlog_oldest_age_s, 0.0)
    return Component(
        BACKLOG_AGE,
        WEIGHTS[BACKLOG_AGE],
        piecewise(age / t.backlog_age_s, BACKLOG_RATIO_POINTS),
        age,
        f"oldest due delivery ≤ {t.backlog_age_s:g} s old",
        "Check that workers are running (clarion worker, or serve with its worker on) and "
        "not crashing; a growing backlog with live workers means they cannot keep up: add "
        "workers, or find the slow provider holding their slots (latency per channel).",
    )


def _provider_errors(f: WindowFacts, t: Targets) -> Component:
    worst: tuple[float, str, float] | None = None  # (score, provider, rate)
    for provider, (attempts, errors) in sorted(f.provider_attempts.items()):
        if attempts < max(t.min_events, 1):
            continue  # too few attempts: one timeout out of three is not a 33 % error rate
        rate = min(1.0, errors / attempts)
        score = piecewise(rate, PROVIDER_ERROR_POINTS)
        if worst is None or score < worst[0]:
            worst = (score, provider, rate)
    if worst is None:
        return Component(
            PROVIDER_ERRORS,
            WEIGHTS[PROVIDER_ERRORS],
            100.0,
            None,
            "≤ 1 % of attempts failed, per provider",
            _PROVIDER_ADVICE,
        )
    score, provider, rate = worst
    return Component(
        PROVIDER_ERRORS,
        WEIGHTS[PROVIDER_ERRORS],
        score,
        rate,
        f"≤ 1 % of attempts failed on {provider} (the worst provider)",
        _PROVIDER_ADVICE,
    )


_PROVIDER_ADVICE = (
    "Look at that provider's failure reasons: 5xx and timeouts are an outage on its side "
    "(check its status page; retries will catch up), 429 means you exceed its rate limit "
    "(lower the channel's rate or ask for a higher quota), 401/403 expired credentials."
)


def _opt_outs(f: WindowFacts) -> Component:
    rate = _rate(f.unsubscribed, f.accepted)
    return Component(
        OPT_OUTS,
        WEIGHTS[OPT_OUTS],
        100.0 if rate is None else piecewise(rate, OPT_OUT_POINTS),
        rate,
        "≤ 0.2 % of accepted notifications led to an opt-out",
        "Find which notification types the opt-outs follow (dashboard, by type): users "
        "leave over volume and relevance. Batch or digest chatty types, respect quiet "
        "hours, and stop sending types few people read.",
    )


def _read_trend(f: WindowFacts) -> Component:
    now, before = f.read_rate, f.previous_read_rate
    if now is None or before is None or before <= 0:
        change = None
        score = 100.0  # nothing to compare against: no evidence of a fall
    else:
        change = (now - before) / before  # negative is a fall
        score = piecewise(-change, READ_FALL_POINTS)
    return Component(
        READ_RATE_TREND,
        WEIGHTS[READ_RATE_TREND],
        score,
        change,
        "read rate not more than 10 % below the previous period",
        "A sudden fall usually means notifications stopped reaching the inbox or the app "
        "(a broken client, a live connection that no longer pushes) or a new type users "
        "ignore: compare the read rate by type and by channel with the previous period.",
    )


def _degraded(f: WindowFacts) -> Component:
    names = sorted(set(f.degraded))
    listed = ", ".join(names) if names else "none"
    return Component(
        DEGRADED_DEPENDENCIES,
        WEIGHTS[DEGRADED_DEPENDENCIES],
        max(0.0, 100.0 - DEGRADED_COST * len(names)),
        float(len(names)),
        "no degraded dependency",
        f"Degraded now: {listed}. Check the dependency's own health (database connections "
        "and disk, Redis memory and reachability); Clarion keeps working on fallbacks "
        "(docs/outages.md) but slower or without live push until it recovers.",
    )


# -- scoring ----------------------------------------------------------------------------


def score_window(facts: WindowFacts, targets: Targets = Targets()) -> WindowScore:
    """The score of one window: ``sum(weight * component score) / 100``, in 0-100.

    Without enough data (fewer than ``targets.min_events`` events) the event components
    score a neutral 100: their figures are still measured and shown.
    """
    enough = facts.events >= targets.min_events
    components: tuple[Component, ...] = (
        _delivery_success(facts),
        _dead_letters(facts),
        _latency(facts, targets),
        _backlog(facts, targets),
        _provider_errors(facts, targets),
        _opt_outs(facts),
        _read_trend(facts),
        _degraded(facts),
    )
    if not enough:
        components = tuple(_neutral(c) if c.name in EVENT_COMPONENTS else c for c in components)
    total = 0.0
    for c in components:
        total += c.weight * c.score
    return WindowScore(facts.window, min(max(total / 100.0, 0.0), 100.0), components, enough)


def _neutral(c: Component) -> Component:
    return Component(c.name, c.weight, 100.0, c.figure, c.target, c.advice)


def combine(windows: Sequence[WindowScore]) -> HealthScore:
    """The worst window sets the score.

    ``score`` is the lowest window score. A window without enough data takes part only
    through its state components (backlog age, degraded dependencies: its event
    components are a neutral 100), which is how "ignored" is made precise: when no
    window has enough data, the score is what the backlog and the dependencies say
    alone (100 when both are fine), and ``worst_window`` is None. Otherwise
    ``worst_window`` is the lowest-scoring window with enough data (the first in the
    given order on a tie). When all windows share the same state facts, as they do when
    measured at one moment, the lowest score is always a window with enough data.

    Raises ValueError for no windows at all: there is nothing to score.
    """
    if not windows:
        raise ValueError("combine needs at least one window")
    score = min(w.score for w in windows)
    judged = [w for w in windows if w.enough_data]
    worst = min(judged, key=lambda w: w.score).window if judged else None
    return HealthScore(score, worst, tuple(windows))
