"""Retry policy: pure rules, checked as properties."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clarion.domain.retry import DEFAULT_POLICIES, Outcome, RetryPolicy, policy_for

policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 20),
    base_delay=st.floats(0.01, 60),
    max_delay=st.floats(60, 86_400),
    jitter=st.sampled_from(["full", "decorrelated", "none"]),
    max_retry_after=st.floats(0, 86_400),
)
attempts = st.integers(1, 200)
retry_afters = st.none() | st.floats(0, 10**7, allow_nan=False)
seeds = st.integers(0, 2**32)


@given(policies, attempts, seeds)
def test_delay_within_bounds_without_retry_after(
    policy: RetryPolicy, attempt: int, seed: int
) -> None:
    delay = policy.next_delay(attempt, None, random.Random(seed))
    assert 0 <= delay <= policy.max_delay
    if policy.jitter == "full":
        assert delay <= policy.ceiling(attempt)


@given(policies, attempts, retry_afters, seeds)
def test_retry_after_is_a_capped_floor(
    policy: RetryPolicy, attempt: int, retry_after: float | None, seed: int
) -> None:
    delay = policy.next_delay(attempt, retry_after, random.Random(seed))
    floor = min(retry_after, policy.max_retry_after) if retry_after else 0.0
    assert delay >= floor
    assert delay <= max(policy.max_delay, floor)


@given(policies, attempts)
def test_ceiling_is_monotone_and_capped(policy: RetryPolicy, attempt: int) -> None:
    assert policy.ceiling(attempt) <= policy.ceiling(attempt + 1) <= policy.max_delay
    assert policy.ceiling(1) == policy.base_delay


@given(policies, attempts, st.floats(0.01, 86_400), seeds)
def test_decorrelated_stays_within_base_and_cap(
    policy: RetryPolicy, attempt: int, previous: float, seed: int
) -> None:
    rp = RetryPolicy(
        max_attempts=policy.max_attempts,
        base_delay=policy.base_delay,
        max_delay=policy.max_delay,
        jitter="decorrelated",
    )
    delay = rp.next_delay(attempt, None, random.Random(seed), previous=previous)
    assert rp.base_delay <= delay <= rp.max_delay


def test_no_jitter_doubles() -> None:
    rp = RetryPolicy(base_delay=1, max_delay=10, jitter="none")
    rng = random.Random(0)
    assert [rp.next_delay(a, None, rng) for a in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_jitter_spreads_delays() -> None:
    rp = RetryPolicy(base_delay=10, max_delay=1000)
    rng = random.Random(1)
    delays = {round(rp.next_delay(5, None, rng), 3) for _ in range(50)}
    assert len(delays) > 40


@given(policies, st.integers(1, 40))
def test_decide(policy: RetryPolicy, attempt: int) -> None:
    assert policy.decide(attempt, Outcome.DELIVERED) == "done"
    assert policy.decide(attempt, Outcome.NO_CONTACT) == "done"
    assert policy.decide(attempt, Outcome.PERMANENT) == "dead"
    expected = "retry" if attempt < policy.max_attempts else "dead"
    assert policy.decide(attempt, Outcome.TRANSIENT) == expected
    assert policy.decide(attempt, "transient") == expected


def test_decide_rejects_unknown_outcomes() -> None:
    with pytest.raises(ValueError):
        RetryPolicy().decide(1, "maybe")


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"base_delay": 0}, {"base_delay": 10, "max_delay": 5}],
)
def test_invalid_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_per_channel_defaults_and_global_cap() -> None:
    assert set(DEFAULT_POLICIES) == {"email", "push", "sms", "webhook", "apprise"}
    assert policy_for("push").max_attempts < policy_for("email").max_attempts
    assert policy_for("email", max_attempts=3).max_attempts == 3
    assert policy_for("push", max_attempts=100) == policy_for("push")
    assert policy_for("in_app") == RetryPolicy()
