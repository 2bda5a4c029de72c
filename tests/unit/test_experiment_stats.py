"""The statistics of A/B experiments (clarion/domain/experiment_stats.py and
experiment_sequential.py): hand-computed values, the rules of the verdict, and the
simulations issue 14 asks for (docs/experiments.md, "Simulations", reports their rates).

The simulations draw binomial counts per batch of users with fixed seeds and run the
module's own sequential statistic over every run and look at once (numpy arrays), so
1,000 runs take well under a second; a sample of runs also goes through ``verdict`` look
by look to show that the vectorised decision is the one the service makes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest
from scipy import special

from clarion.domain import experiment_sequential as seq
from clarion.domain.experiment_stats import (
    Arm,
    always_valid_p,
    guardrail_worse,
    holm,
    prob_beats,
    sample_size_per_arm,
    sequential_p,
    srm,
    two_proportion,
    verdict,
)

RUNS = 1_000
LOOKS = 20
ALPHA = 0.05


def phi_sf(x: float) -> float:
    """Upper tail of the standard normal, written out: 0.5 erfc(x / sqrt 2)."""
    return 0.5 * math.erfc(x / math.sqrt(2.0))


# -- arms and inputs -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "users", "successes"),
    [("", 10, 1), ("a", -1, 0), ("a", 10, 11), ("a", 10, -1), ("a", 10.0, 1), ("a", True, 0)],
)
def test_bad_arms_raise(name: str, users: int, successes: int) -> None:
    with pytest.raises(ValueError):
        Arm(name, users, successes)


def test_bad_inputs_raise() -> None:
    c, v = Arm("control", 100, 10), Arm("b", 100, 12)
    for alpha in (0.0, 1.0, -0.1, 2.0, float("nan")):
        with pytest.raises(ValueError):
            two_proportion(c, v, alpha=alpha)
        with pytest.raises(ValueError):
            verdict(c, [v], alpha=alpha)
        with pytest.raises(ValueError):
            guardrail_worse(1, 10, 2, 10, alpha=alpha)
    with pytest.raises(ValueError):
        two_proportion(c, v, planned_per_arm=1)
    with pytest.raises(ValueError):
        two_proportion(c, v, comparisons=0)
    with pytest.raises(ValueError):
        verdict(c, [])
    with pytest.raises(ValueError):
        verdict(c, [v, Arm("b", 10, 1)])  # duplicate name
    with pytest.raises(ValueError):
        verdict(c, [Arm("control", 10, 1)])
    with pytest.raises(ValueError):
        verdict(c, [v], previous_p={"b": 1.5})
    with pytest.raises(ValueError):
        verdict(c, [v], min_users=-1)
    with pytest.raises(ValueError):
        guardrail_worse(11, 10, 0, 10)
    with pytest.raises(ValueError):
        guardrail_worse(-1, 10, 0, 10)
    with pytest.raises(ValueError):
        always_valid_p(1.0, 100.0, 1.2, t=0.01)
    with pytest.raises(ValueError):
        sequential_p(1.0, 100.0, 0.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"baseline": 0.0, "mde_relative": 0.2},
        {"baseline": 1.0, "mde_relative": 0.2},
        {"baseline": 0.1, "mde_relative": 0.0},
        {"baseline": 0.9, "mde_relative": 0.2},  # 1.08 is no rate
        {"baseline": 0.1, "mde_relative": -1.0},
        {"baseline": 0.1, "mde_relative": float("inf")},
        {"baseline": 0.1, "mde_relative": 0.2, "alpha": 0.0},
        {"baseline": 0.1, "mde_relative": 0.2, "power": 1.0},
        {"baseline": 0.1, "mde_relative": 0.2, "power": 0.3},
        {"baseline": 0.1, "mde_relative": 0.2, "arms": 1},
    ],
)
def test_sample_size_rejects_out_of_range(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        sample_size_per_arm(**kwargs)  # type: ignore[arg-type]


# -- the fixed-horizon comparison ----------------------------------------------------------


def test_two_proportion_against_hand_values() -> None:
    c = two_proportion(Arm("control", 1000, 100), Arm("b", 1000, 130))
    # pooled p = 230/2000 = 0.115; V = 0.115 * 0.885 * (1/1000 + 1/1000) = 2.0355e-4
    z = 0.03 / math.sqrt(0.115 * 0.885 * 0.002)
    assert z == pytest.approx(2.10274, abs=1e-5)
    assert c.z == pytest.approx(z, rel=1e-12)
    assert c.p_value == pytest.approx(2 * phi_sf(z), rel=1e-9)
    assert c.p_value == pytest.approx(0.035488, abs=1e-6)
    assert (c.rate, c.control_rate, c.diff) == pytest.approx((0.13, 0.10, 0.03))
    assert c.lift == pytest.approx(0.3)
    # Agresti-Caffo: 101/1002 and 131/1002; diff 30/1002; 1.959964 x sqrt of the variance
    q_c, q_v = 101 / 1002, 131 / 1002
    se = math.sqrt(q_c * (1 - q_c) / 1002 + q_v * (1 - q_v) / 1002)
    assert (c.ci_low, c.ci_high) == pytest.approx(
        (30 / 1002 - 1.959964 * se, 30 / 1002 + 1.959964 * se), abs=1e-6
    )
    assert (c.ci_low, c.ci_high) == pytest.approx((0.001955, 0.057926), abs=1e-6)
    # Fixed-horizon significant, but one look at 1,000 of 10,000 planned is not enough for
    # the sequential test: its interval is wider and holds 0.
    assert c.p_sequential > 0.05
    assert c.seq_low < 0 < c.seq_high
    assert c.seq_high - c.seq_low > c.ci_high - c.ci_low


def test_two_proportion_edges() -> None:
    nobody = two_proportion(Arm("control", 0, 0), Arm("b", 0, 0))
    assert nobody.lift is None and nobody.p_value == 1.0 and nobody.p_sequential == 1.0
    assert nobody.prob_beats_control == pytest.approx(0.5)
    none_converted = two_proportion(Arm("control", 500, 0), Arm("b", 500, 0))
    assert none_converted.p_value == 1.0 and none_converted.lift is None
    assert none_converted.ci_low < 0 < none_converted.ci_high  # never a zero width
    assert none_converted.seq_low < 0 < none_converted.seq_high
    everything = two_proportion(Arm("control", 50, 50), Arm("b", 40, 40))
    assert everything.p_value == 1.0 and everything.lift == 0.0
    huge = two_proportion(Arm("control", 10**7, 10**6), Arm("b", 10**7, 2 * 10**6))
    assert huge.p_value == 0.0 and huge.p_sequential == 0.0
    assert -1.0 <= huge.seq_low <= huge.ci_low < huge.ci_high <= huge.seq_high <= 1.0


def test_running_minimum_of_the_sequential_p() -> None:
    c, v = Arm("control", 5000, 500), Arm("b", 5000, 560)
    fresh = two_proportion(c, v).p_sequential
    assert two_proportion(c, v, previous_p=0.01).p_sequential == 0.01
    assert two_proportion(c, v, previous_p=1.0).p_sequential == fresh
    assert always_valid_p(0.0, 100.0, 0.2, t=0.01) == 0.2
    assert always_valid_p(5.0, 5000.0, 0.2, t=0.001) < 0.2


# -- the sequential test ---------------------------------------------------------------


def test_msprt_formula_by_hand() -> None:
    z, m, t = 2.5, 3000.0, 0.002
    r = m * t  # 6: Lambda = 7^-1/2 exp(3.125 x 6/7) = 5.5049, p = 0.18166
    expected = 1.0 / ((1 + r) ** -0.5 * math.exp(z * z / 2 * r / (1 + r)))
    assert sequential_p(z, m, t) == pytest.approx(min(1.0, expected), rel=1e-12)
    assert expected == pytest.approx(0.18166, abs=1e-5)
    # p < alpha exactly beyond the boundary b(r)
    b = seq.boundary(r, ALPHA)
    assert sequential_p(b, m, t) == pytest.approx(ALPHA, rel=1e-9)
    assert sequential_p(b * 1.001, m, t) < ALPHA < sequential_p(b * 0.999, m, t)
    # vectorised: the same numbers over arrays
    zs = np.array([[0.0, 1.0], [2.5, 4.0]])
    ms = np.array([[10.0, 3000.0], [3000.0, 50.0]])
    out = sequential_p(zs, ms, t)
    for i in range(2):
        for j in range(2):
            assert out[i, j] == sequential_p(float(zs[i, j]), float(ms[i, j]), t)


def test_mixture_tuning() -> None:
    assert seq.optimal_r(0.05) == pytest.approx(8.212, abs=1e-3)
    assert seq.min_boundary(0.05) == pytest.approx(3.0351, abs=1e-4)
    # the boundary is smallest at r*: larger on either side
    r = seq.optimal_r(0.05)
    assert seq.boundary(r / 2, 0.05) > seq.min_boundary(0.05) < seq.boundary(r * 2, 0.05)
    t = seq.mixing_variance(8000, 0.05)
    assert t * 4000 == pytest.approx(r)
    assert seq.mixing_variance(None, 0.05) == seq.mixing_variance(seq.DEFAULT_PLANNED_PER_ARM, 0.05)


def test_sample_size_by_hand() -> None:
    # Fixed horizon, 10 % -> 12 %: (1.959964 sqrt(2 .11 .89) + 0.841621 sqrt(.09 + .1056))^2
    # / 0.02^2 = 3840.8 -> 3841 per arm.
    root = 1.959964 * math.sqrt(2 * 0.11 * 0.89) + 0.841621 * math.sqrt(0.09 + 0.12 * 0.88)
    assert root**2 / 0.02**2 == pytest.approx(3840.85, abs=0.01)
    assert sample_size_per_arm(0.10, 0.20, sequential=False) == 3841
    # Sequential: the same with the mSPRT's tuned boundary 3.0351 in place of 1.96.
    root = 3.035122 * math.sqrt(2 * 0.11 * 0.89) + 0.841621 * math.sqrt(0.09 + 0.12 * 0.88)
    assert sample_size_per_arm(0.10, 0.20) == math.ceil(root**2 / 0.02**2) == 7356
    # More arms: Bonferroni over arms - 1 comparisons needs more per arm; a decrease too.
    assert sample_size_per_arm(0.10, 0.20, arms=3) > 7356
    assert sample_size_per_arm(0.10, 0.20, arms=3, sequential=False) > 3841
    assert sample_size_per_arm(0.10, -0.20) > 0
    assert sample_size_per_arm(0.10, 0.20, power=0.9) > 7356


# -- Holm, SRM, Bayes, guardrails --------------------------------------------------------


def test_holm_by_hand() -> None:
    # sorted: d .005 x4 = .02; a .01 x3 = .03; c .03 x2 = .06; b .04 x1 = .04 -> max .06
    assert holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.005}) == pytest.approx(
        {"a": 0.03, "b": 0.06, "c": 0.06, "d": 0.02}
    )
    assert holm({"a": 0.3, "b": 0.3}) == {"a": 0.6, "b": 0.6}
    assert holm({"a": 0.9, "b": 0.8}) == {"a": 1.0, "b": 1.0}
    assert holm({"only": 0.04}) == {"only": 0.04}
    assert holm({}) == {}
    for bad in (-0.1, 1.1, float("nan")):
        with pytest.raises(ValueError):
            holm({"a": bad})


def test_srm_51_49_at_100000_is_flagged() -> None:
    result = srm({"a": 51_000, "b": 49_000}, {"a": 0.5, "b": 0.5})
    # chi2 = 1000^2 / 50000 x 2 = 40 on 1 df
    assert result.statistic == pytest.approx(40.0)
    assert result.p_value == pytest.approx(2.54e-10, rel=1e-2)
    assert result.flagged
    assert result.expected == {"a": 50_000.0, "b": 50_000.0}


def test_srm_weights_and_edges() -> None:
    ok = srm({"a": 5010, "b": 2490, "hold": 2500}, {"a": 2, "b": 1, "hold": 1})
    assert ok.expected == pytest.approx({"a": 5000.0, "b": 2500.0, "hold": 2500.0})
    assert not ok.flagged and ok.p_value > 0.5
    assert srm({"a": 0, "b": 0}, {"a": 1, "b": 1}).p_value == 1.0
    assert srm({"a": 10, "b": 3}, {"a": 1, "b": 0}).flagged
    assert not srm({"a": 10, "b": 0, "c": 10}, {"a": 1, "b": 0, "c": 1}).flagged
    for observed, weights in (
        ({"a": 1, "b": 1}, {"a": 1, "c": 1}),
        ({"a": 1}, {"a": 1}),
        ({"a": -1, "b": 1}, {"a": 1, "b": 1}),
        ({"a": 1, "b": 1}, {"a": -1, "b": 1}),
        ({"a": 1, "b": 1}, {"a": 0, "b": 0}),
        ({"a": 1, "b": 1}, {"a": float("inf"), "b": 1}),
    ):
        with pytest.raises(ValueError):
            srm(observed, weights)


def test_srm_on_true_50_50_splits_is_rarely_flagged() -> None:
    rng = np.random.default_rng(20_240_514)
    firsts = rng.binomial(100_000, 0.5, size=RUNS)
    flagged = [srm({"a": int(x), "b": 100_000 - int(x)}, {"a": 1, "b": 1}).flagged for x in firsts]
    rate = sum(flagged) / RUNS
    assert rate <= 0.005, rate
    # and the 51/49 split is far beyond anything the A/A runs produced
    assert max(abs(int(x) - 50_000) for x in firsts) < 1_000


def exact_prob_beats(control: Arm, variant: Arm) -> float:
    """Evan Miller's closed form for P(p_B > p_A) with integer Beta parameters."""
    a_a, b_a = 1 + control.successes, 1 + control.users - control.successes
    a_b, b_b = 1 + variant.successes, 1 + variant.users - variant.successes
    i = np.arange(a_b)
    terms = (
        special.betaln(a_a + i, b_a + b_b)
        - np.log(b_b + i)
        - special.betaln(1 + i, b_b)
        - special.betaln(a_a, b_a)
    )
    return float(np.exp(terms).sum())


def test_prob_beats_control() -> None:
    assert prob_beats(Arm("c", 1000, 100), Arm("b", 1000, 100)) == pytest.approx(0.5, abs=1e-9)
    assert prob_beats(Arm("c", 0, 0), Arm("b", 0, 0)) == pytest.approx(0.5, abs=1e-9)
    assert prob_beats(Arm("c", 10_000, 1000), Arm("b", 10_000, 1300)) > 0.999999
    assert prob_beats(Arm("c", 10_000, 1300), Arm("b", 10_000, 1000)) < 1e-6
    cases = [
        (Arm("c", 100, 10), Arm("b", 100, 20)),
        (Arm("c", 10, 3), Arm("b", 5, 0)),
        (Arm("c", 1000, 0), Arm("b", 10, 0)),
        (Arm("c", 10_000, 1000), Arm("b", 10_000, 1100)),
        (Arm("c", 37, 5), Arm("b", 4000, 600)),
    ]
    for c, b in cases:
        assert prob_beats(c, b) == pytest.approx(exact_prob_beats(c, b), abs=1e-8)
        assert prob_beats(c, b) + prob_beats(b, c) == pytest.approx(1.0, abs=1e-9)
    assert two_proportion(*cases[0]).prob_beats_control == pytest.approx(0.975173, abs=1e-6)


def test_guardrail_worse() -> None:
    assert guardrail_worse(10, 10_000, 40, 10_000)
    assert not guardrail_worse(40, 10_000, 10, 10_000)  # better is not worse
    assert not guardrail_worse(20, 10_000, 20, 10_000)
    assert not guardrail_worse(0, 0, 5, 10)
    assert not guardrail_worse(0, 100, 0, 100)
    # by hand: 50/5000 vs 70/5000; pooled .012, z = .004 / sqrt(.012 .988 / 2500) = 1.8368
    z = 0.004 / math.sqrt(0.012 * 0.988 * 2 / 5000)
    assert z == pytest.approx(1.8368, abs=1e-4)
    assert phi_sf(z) == pytest.approx(0.0331, abs=1e-4)
    assert guardrail_worse(50, 5000, 70, 5000)  # one-sided p .033 < .05
    assert not guardrail_worse(50, 5000, 70, 5000, alpha=0.01)


# -- the verdict -------------------------------------------------------------------------


def test_verdict_rules() -> None:
    control = Arm("control", 20_000, 2000)
    better = Arm("b", 20_000, 2600)
    same = Arm("c", 20_000, 2010)
    worse = Arm("d", 20_000, 1500)

    v = verdict(control, [better, same])
    assert (v.state, v.winner) == ("winner", "b")
    assert v.adjusted_p["b"] < ALPHA <= v.adjusted_p["c"]
    assert [c.variant for c in v.comparisons] == ["b", "c"]

    assert verdict(control, [better], srm_flagged=True).state == "invalid"

    held = verdict(control, [better, same], guardrails_failed={"b"})
    assert (held.state, held.winner) == ("running", None)
    assert "guardrail" in held.reason and "b" in held.reason

    done = verdict(control, [better, same], guardrails_failed={"b"}, planned_per_arm=20_000)
    assert done.state == "no_difference" and "guardrail" in done.reason

    assert verdict(control, [same], planned_per_arm=20_000).state == "no_difference"
    assert verdict(control, [same], planned_per_arm=20_001).state == "running"

    all_worse = verdict(control, [worse])
    assert (all_worse.state, all_worse.winner) == ("winner", "control")
    assert verdict(control, [worse, same]).state == "running"  # not every variant is worse

    # the best of two significant variants wins
    best = Arm("e", 20_000, 2900)
    assert verdict(control, [better, best]).winner == "e"

    # too few users: no winner however large the effect
    tiny = verdict(Arm("control", 60, 0), [Arm("b", 60, 60)], min_users=100)
    assert tiny.state == "running" and "100 users" in tiny.reason
    # (the mixture tuned to 10,000 per arm discounts 60 users heavily: p 0.06 at z = 11)
    small = verdict(Arm("control", 60, 0), [Arm("b", 60, 60)], min_users=50, planned_per_arm=100)
    assert small.winner == "b"


def test_verdict_keeps_the_running_minimum() -> None:
    control = Arm("control", 3000, 300)
    variant = Arm("b", 3000, 300)
    first = verdict(control, [variant], previous_p={"b": 0.01})
    assert first.adjusted_p["b"] == 0.01
    assert first.state == "winner" or first.comparisons[0].diff <= 0
    # previous values (the adjusted p of the last call) never go up
    prev = {"b": 0.2, "c": 0.03}
    again = verdict(control, [variant, Arm("c", 3000, 301)], previous_p=prev)
    assert again.adjusted_p["b"] <= 0.2 and again.adjusted_p["c"] <= 0.03


# -- simulations -------------------------------------------------------------------------


@dataclass
class Simulated:
    """Per run, per look (and per variant): the decision the verdict would take."""

    users: npt.NDArray[np.int64]  # per look, per arm
    adjusted: npt.NDArray[np.float64]  # runs x looks x variants, Holm, running minimum
    diff: npt.NDArray[np.int64]  # successes_v - successes_c (equal arms)
    control: npt.NDArray[np.int64]  # runs x looks
    variants: npt.NDArray[np.int64]  # runs x looks x variants
    fixed_p: npt.NDArray[np.float64]  # the fixed-horizon z-test's p, runs x looks x variants

    def significant(self, min_users: int = 100) -> npt.NDArray[np.bool_]:
        return (self.adjusted < ALPHA) & (self.users >= min_users)[None, :, None]

    def winner_by(self) -> npt.NDArray[np.int64]:
        """Per run and look: the index of the winning variant, -2 control, -1 none."""
        sig = self.significant()
        better = sig & (self.diff > 0)
        rates = np.where(better, self.variants, -1)
        best = np.where(better.any(-1), rates.argmax(-1), -1)
        all_worse = (sig & (self.diff < 0)).all(-1)
        return np.where(best >= 0, best, np.where(all_worse, -2, -1))


def simulate(
    rng: np.random.Generator,
    *,
    control_rate: float,
    variant_rates: list[float],
    batch: int,
    looks: int,
    planned: int,
    runs: int = RUNS,
) -> Simulated:
    """Users arrive in equal batches per arm; after each batch, everything is looked at."""
    k = len(variant_rates)
    users = batch * np.arange(1, looks + 1)
    t = seq.mixing_variance(planned, ALPHA / k)
    control = rng.binomial(batch, control_rate, size=(runs, looks)).cumsum(axis=1)
    variants = np.stack(
        [rng.binomial(batch, p, size=(runs, looks)).cumsum(axis=1) for p in variant_rates],
        axis=-1,
    )
    c = control[..., None]
    pooled = (c + variants) / (2.0 * users[None, :, None])
    variance = pooled * (1.0 - pooled) * 2.0 / users[None, :, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(variance > 0, (variants - c) / users[None, :, None] / np.sqrt(variance), 0)
    m = np.broadcast_to(users[None, :, None] / 2.0, z.shape)
    p_look = sequential_p(z, m, t)
    # As verdict() does it, look by look: each variant's p is the running minimum with
    # the last adjusted p, Holm over the variants, then the running minimum again.
    adjusted = np.empty_like(p_look)
    last = np.ones((runs, k))
    for look in range(looks):
        current = np.minimum(last, p_look[:, look])
        order = np.argsort(current, axis=-1, kind="stable")
        ranked = np.take_along_axis(current, order, axis=-1)
        ranked = np.minimum(1.0, np.maximum.accumulate(ranked * (k - np.arange(k)), axis=-1))
        holm_p = np.empty_like(ranked)
        np.put_along_axis(holm_p, order, ranked, axis=-1)
        last = adjusted[:, look] = np.minimum(last, holm_p)
    fixed_p = special.erfc(np.abs(z) / math.sqrt(2.0))
    return Simulated(users, adjusted, variants - c, control, variants, fixed_p)


PLANNED = sample_size_per_arm(0.10, 0.20)  # 7,356 per arm for 10 % -> 12 %


def test_aa_peeking_after_every_batch_rarely_declares_a_winner() -> None:
    rng = np.random.default_rng(14_001)
    sim = simulate(
        rng,
        control_rate=0.10,
        variant_rates=[0.10],
        batch=math.ceil(PLANNED / LOOKS),
        looks=LOOKS,
        planned=PLANNED,
    )
    false_winner = (sim.winner_by() != -1).any(axis=1).mean()
    assert false_winner <= 0.05, false_winner
    # the same runs read with the fixed-horizon p at every look: the problem peeking makes
    naive = (sim.fixed_p < ALPHA).any(axis=(1, 2)).mean()
    assert naive > 0.15, naive


@pytest.mark.parametrize(("rate", "looks", "horizon"), [(0.02, 200, 3), (0.10, 400, 2)])
def test_aa_with_many_more_looks_and_past_the_plan(rate: float, looks: int, horizon: int) -> None:
    """Looking far more often, at a low rate, and going on past the planned size."""
    planned = sample_size_per_arm(rate, 0.20)
    rng = np.random.default_rng(14_002 + looks)
    sim = simulate(
        rng,
        control_rate=rate,
        variant_rates=[rate],
        batch=math.ceil(horizon * planned / looks),
        looks=looks,
        planned=planned,
    )
    false_winner = (sim.winner_by() != -1).any(axis=1).mean()
    assert false_winner <= 0.05, false_winner


def test_aa_with_three_variants_holm_keeps_the_family_wise_rate() -> None:
    planned = sample_size_per_arm(0.10, 0.20, arms=4)
    rng = np.random.default_rng(14_003)
    sim = simulate(
        rng,
        control_rate=0.10,
        variant_rates=[0.10, 0.10, 0.10],
        batch=math.ceil(planned / LOOKS),
        looks=LOOKS,
        planned=planned,
    )
    any_false = sim.significant().any(axis=(1, 2)).mean()  # any variant, either direction
    assert any_false <= 0.05, any_false


def test_ab_with_a_20_percent_lift_is_found_at_the_planned_size() -> None:
    rng = np.random.default_rng(14_004)
    sim = simulate(
        rng,
        control_rate=0.10,
        variant_rates=[0.12],
        batch=math.ceil(PLANNED / LOOKS),
        looks=LOOKS,
        planned=PLANNED,
    )
    found = (sim.winner_by()[:, -1] == 0).mean()
    assert found >= 0.80, found
    assert (sim.winner_by() == -2).sum() == 0  # control never wins against a real lift


def test_ab_power_holds_with_a_single_look_at_the_planned_size() -> None:
    """The planned size is derived for one look at the end; more looks only add."""
    rng = np.random.default_rng(14_005)
    sim = simulate(
        rng,
        control_rate=0.10,
        variant_rates=[0.12],
        batch=PLANNED,
        looks=1,
        planned=PLANNED,
    )
    found = (sim.winner_by()[:, -1] == 0).mean()
    assert found == pytest.approx(0.80, abs=0.035), found


def test_ab_with_two_variants_finds_the_better_one() -> None:
    planned = sample_size_per_arm(0.10, 0.20, arms=3)
    rng = np.random.default_rng(14_006)
    sim = simulate(
        rng,
        control_rate=0.10,
        variant_rates=[0.10, 0.12],
        batch=math.ceil(planned / LOOKS),
        looks=LOOKS,
        planned=planned,
    )
    winners = sim.winner_by()[:, -1]
    assert (winners == 1).mean() >= 0.80
    assert (winners == 0).mean() <= 0.05


def test_the_vectorised_decision_is_the_verdicts() -> None:
    """40 runs of 20 looks each through verdict(), the service's path, call after call."""
    rng = np.random.default_rng(14_007)
    batch = math.ceil(PLANNED / LOOKS)
    sim = simulate(
        rng,
        control_rate=0.10,
        variant_rates=[0.11, 0.12],
        batch=batch,
        looks=LOOKS,
        planned=PLANNED,
        runs=40,
    )
    expected = sim.winner_by()
    names = ["b", "c"]
    states = set()
    for run in range(40):
        previous: dict[str, float] = {}
        for look in range(LOOKS):
            n = int(sim.users[look])
            v = verdict(
                Arm("control", n, int(sim.control[run, look])),
                [Arm(names[i], n, int(sim.variants[run, look, i])) for i in range(2)],
                previous_p=previous,
                planned_per_arm=PLANNED,
            )
            previous = dict(v.adjusted_p)
            assert [previous[x] for x in names] == pytest.approx(
                list(sim.adjusted[run, look]), rel=1e-9, abs=1e-300
            )
            want = expected[run, look]
            assert v.winner == (None if want == -1 else "control" if want == -2 else names[want])
            states.add(v.state)
    assert {"running", "winner"} <= states
