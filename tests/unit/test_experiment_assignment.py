"""Assignment: uniform within 1 % of the weights over 100,000 users (and a chi-squared
test that does not reject), the same in another process, and the holdout first."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from scipy.stats import chisquare

from clarion.domain.experiment_assignment import HOLDOUT, Assigner, assign, pick

WEIGHTS = [("a", 50.0), ("b", 30.0), ("c", 20.0)]


def test_uniform_within_one_percent_of_the_weights() -> None:
    n = 100_000
    counts = {"a": 0, "b": 0, "c": 0, HOLDOUT: 0}
    for i in range(n):
        counts[assign("exp-1", f"user-{i}", WEIGHTS, 0.1)] += 1
    shares = {k: v / n for k, v in counts.items()}
    expected = {"a": 0.45, "b": 0.27, "c": 0.18, HOLDOUT: 0.10}
    for k, share in expected.items():
        assert abs(shares[k] - share) < 0.01, (k, shares[k])  # within 1 % of the traffic
    keys = sorted(expected)
    assert chisquare([counts[k] for k in keys], [expected[k] * n for k in keys]).pvalue > 0.001


def test_the_same_in_another_process() -> None:
    users = [f"user-{i}" for i in range(2000)]
    here = [assign("exp-2", u, WEIGHTS, 0.05) for u in users]
    code = (
        "import json, sys\n"
        "from clarion.domain.experiment_assignment import assign\n"
        f"w = {WEIGHTS!r}\n"
        "print(json.dumps([assign('exp-2', f'user-{i}', w, 0.05) for i in range(2000)]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == here


def test_another_experiment_shuffles_users_independently() -> None:
    users = [f"user-{i}" for i in range(10_000)]
    first = [assign("exp-x", u, [("a", 50), ("b", 50)], 0) for u in users]
    second = [assign("exp-y", u, [("a", 50), ("b", 50)], 0) for u in users]
    same = sum(x == y for x, y in zip(first, second, strict=True)) / len(users)
    assert 0.48 < same < 0.52  # independent halves agree half the time


def test_pick_boundaries_and_refusals() -> None:
    assert pick(0.0, WEIGHTS, 0.1) == HOLDOUT
    assert pick(0.1, WEIGHTS, 0.1) == "a"
    assert pick(0.999999, WEIGHTS, 0.1) == "c"
    with pytest.raises(ValueError):
        pick(0.5, [], 0)
    with pytest.raises(ValueError):
        pick(0.5, WEIGHTS, 1.0)


@pytest.mark.parametrize(
    ("weights", "holdout"),
    [(WEIGHTS, 0.1), (WEIGHTS, 0.0), ([("x", 33.3), ("y", 33.3), ("z", 33.4)], 0.5)],
)
def test_an_assigner_gives_what_assign_gives(
    weights: list[tuple[str, float]], holdout: float
) -> None:
    one = Assigner("exp-4", weights, holdout)
    users = [f"user-{i}" for i in range(20_000)]
    assert [one(u) for u in users] == [assign("exp-4", u, weights, holdout) for u in users]
    for point in (0.0, holdout, 0.5, 0.999999999, 1.0 - 1e-17):
        assert one.at(point) == pick(point, weights, holdout)
