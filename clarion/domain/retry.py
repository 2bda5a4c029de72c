"""When to try a delivery again, and how long to wait first.

Pure rules, no I/O: the worker asks :func:`RetryPolicy.decide` what to do with an attempt's
outcome and :func:`RetryPolicy.next_delay` when to come back. Randomness is passed in (an
``rng`` with ``random()``/``uniform()``, e.g. :class:`random.Random`) so tests and property
checks are deterministic.

Why jitter: thousands of deliveries failing against the same provider outage must not all
come back at the same instant and knock it over again ("thundering herd"); spreading them
uniformly under an exponentially growing ceiling (AWS's "full jitter") smooths the load.

``Outcome`` lives here rather than next to the channels because it is a domain word: the
channels produce it, the worker and this policy consume it, and ``domain/`` must not import
``delivery/``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, Protocol

Decision = Literal["retry", "dead", "done"]
Jitter = Literal["full", "decorrelated", "none"]


class Outcome(StrEnum):
    """How one attempt over one channel ended, as classified by the channel."""

    DELIVERED = "delivered"
    TRANSIENT = "transient"  # try again later (timeouts, 429, 5xx, connection refused)
    PERMANENT = "permanent"  # trying again cannot help (550 recipient rejected, 4xx, gone)
    NO_CONTACT = "no_contact"  # the user has no address for this channel: suppress, not fail


class Rng(Protocol):
    """The slice of :class:`random.Random` the policy needs."""

    def uniform(self, a: float, b: float) -> float: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded by ``max_delay`` and ``max_attempts``.

    ``max_retry_after`` caps a provider's ``Retry-After``: we honour it as a floor (sending
    earlier would be refused anyway and may get us throttled harder) but a misbehaving
    server asking for "come back in a week" must not park a delivery forever.
    """

    max_attempts: int = 8
    base_delay: float = 5.0
    max_delay: float = 3600.0
    jitter: Jitter = "full"
    max_retry_after: float = 6 * 3600.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not (0 < self.base_delay <= self.max_delay):
            raise ValueError("need 0 < base_delay <= max_delay")
        if self.max_retry_after < 0:
            raise ValueError("max_retry_after must not be negative")

    def ceiling(self, attempt: int) -> float:
        """The un-jittered delay after ``attempt`` tries: base * 2**(attempt-1), capped."""
        exponent = max(attempt, 1) - 1
        # Avoid float overflow for absurd attempt numbers: past ~64 doublings we are capped.
        if exponent >= 64:
            return self.max_delay
        return min(self.max_delay, self.base_delay * math.pow(2.0, exponent))

    def next_delay(
        self,
        attempt: int,
        retry_after: float | None,
        rng: Rng,
        previous: float | None = None,
    ) -> float:
        """Seconds to wait before the next try, after ``attempt`` (1-based) tries so far.

        ``previous`` is the last delay used, for decorrelated jitter (AWS's
        ``min(cap, uniform(base, previous * 3))``); without it, the exponential ceiling
        stands in. The result never exceeds ``max(max_delay, capped Retry-After)`` and is
        never below the capped Retry-After.
        """
        cap = self.ceiling(attempt)
        if self.jitter == "full":
            delay = rng.uniform(0.0, cap)
        elif self.jitter == "decorrelated":
            prev = previous if previous is not None and previous > 0 else cap / 3.0
            upper = min(self.max_delay, max(self.base_delay, prev * 3.0))
            delay = rng.uniform(self.base_delay, upper)
        else:
            delay = cap
        delay = min(max(delay, 0.0), self.max_delay)
        if retry_after is not None and retry_after > 0 and math.isfinite(retry_after):
            delay = max(delay, min(retry_after, self.max_retry_after))
        return delay

    def decide(self, attempt: int, outcome: str) -> Decision:
        """What the worker does after try number ``attempt`` ended with ``outcome``.

        ``no_contact`` is ``done``: the worker records it as a suppressed delivery, since
        retrying cannot conjure an email address and a failure loop would only add noise.
        """
        match Outcome(outcome):
            case Outcome.DELIVERED | Outcome.NO_CONTACT:
                return "done"
            case Outcome.PERMANENT:
                return "dead"
            case Outcome.TRANSIENT:
                return "retry" if attempt < self.max_attempts else "dead"


#: Defaults per channel. Push and SMS are time-sensitive (a "your code is 1234" SMS three
#: hours late is worse than none), so they give up sooner; webhooks follow the Standard
#: Webhooks habit of retrying for about a day; email tolerates greylisting (minutes).
DEFAULT_POLICIES: dict[str, RetryPolicy] = {
    "email": RetryPolicy(max_attempts=8, base_delay=30.0, max_delay=2 * 3600.0),
    "push": RetryPolicy(max_attempts=5, base_delay=10.0, max_delay=900.0),
    "sms": RetryPolicy(max_attempts=5, base_delay=15.0, max_delay=900.0),
    "webhook": RetryPolicy(max_attempts=8, base_delay=5.0, max_delay=6 * 3600.0),
    "apprise": RetryPolicy(max_attempts=6, base_delay=15.0, max_delay=3600.0),
}

_FALLBACK_POLICY = RetryPolicy()


def policy_for(channel: str, max_attempts: int | None = None) -> RetryPolicy:
    """The policy for ``channel`` (a ``ChannelName`` value), optionally capping attempts.

    ``max_attempts`` comes from ``Settings.max_attempts``: a deployment-wide ceiling, so it
    only ever lowers a channel's default.
    """
    policy = DEFAULT_POLICIES.get(str(channel), _FALLBACK_POLICY)
    if max_attempts is not None and max_attempts < policy.max_attempts:
        return RetryPolicy(
            max_attempts=max(1, max_attempts),
            base_delay=policy.base_delay,
            max_delay=policy.max_delay,
            jitter=policy.jitter,
            max_retry_after=policy.max_retry_after,
        )
    return policy
