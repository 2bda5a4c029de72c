"""The sequential test behind an experiment's verdict: the mixture SPRT of Johari et al.

Reference: R. Johari, L. Pekelis, D. Walsh, "Always Valid Inference: Bringing Sequential
Analysis to A/B Testing" (arXiv:1512.04922), published as R. Johari, P. Koomen,
L. Pekelis, D. Walsh, "Peeking at A/B Tests: Why it matters, and what to do about it",
KDD 2017. The normal-mixture boundary is H. Robbins, "Statistical methods related to the
law of the iterated logarithm" (1970); its tuning follows S. Howard, A. Ramdas,
J. McAuliffe, J. Sekhon, "Time-uniform, nonparametric, nonasymptotic confidence
sequences", Annals of Statistics 2021.

The difference of two rates, ``theta = p_v - p_c``, is estimated by
``d = rate_v - rate_c``. Under the null ``theta = 0`` its variance is, with the pooled
rate ``p = (s_c + s_v) / (n_c + n_v)`` and the effective size
``m = 1 / (1/n_c + 1/n_v)`` (``n/2`` for two arms of ``n``)::

    V = p (1 - p) / m          z = d / sqrt(V)

The mSPRT mixes the likelihood ratio of a normal ``d`` over alternatives
``theta ~ N(0, tau^2)``; in closed form (Johari et al., with the plug-in variance)::

    Lambda = sqrt(V / (V + tau^2)) * exp( tau^2 d^2 / (2 V (V + tau^2)) )

We set ``tau^2 = t * p (1 - p)``, a mixing variance on the scale of one user's standard
deviation (``t`` is a standardised variance: effects of ``sqrt(t)`` standard deviations are
typical under the mixture). Then ``tau^2 / V = m t =: r`` and the statistic depends only on
``z`` and ``r``::

    Lambda = (1 + r)^(-1/2) * exp( z^2 r / (2 (1 + r)) )
    p_n = min(1, 1 / Lambda_n)                   (always-valid p at look n)
    P_n = min(P_(n-1), p_n)                      (running minimum over looks, P_0 = 1)

``1/Lambda`` is a nonnegative martingale under the null (asymptotically, with the plug-in
variance), so by Ville's inequality ``P(exists n: P_n <= alpha) <= alpha``: the test may be
read after every user and stopped whenever, and its false-positive rate stays at most
``alpha``.

``p_n < alpha`` exactly when ``|z| > b(r)`` with the boundary::

    b(r)^2 = (1 + r) / r * ( 2 log(1/alpha) + log(1 + r) )

and inverting it around the estimate gives the confidence sequence for ``theta`` (valid
simultaneously at every look with probability ``1 - alpha``)::

    d +- sqrt(V_u) * b(r),    V_u = q_c (1 - q_c) / n_c + q_v (1 - q_v) / n_v

with the unpooled variance (``q`` are the rates with one success and one failure added,
Agresti and Caffo, so that 0 % or 100 % does not give a zero width).

**Choice of the mixing variance.** ``b(r)`` is smallest at one ``r*(alpha)`` (8.21 for
alpha = 0.05, 9.75 for 0.025; found numerically): a mixture is sharpest at the size where
``m t = r*``. We tune it to the experiment's planned size ``N`` per arm: ``t = r* / (N/2)``.
Then at the planned size the boundary is ``b_min(alpha) = b(r*)`` (3.035 for alpha = 0.05,
against 1.96 for one fixed look), and ``sample_size_per_arm(..., sequential=True)`` is the
size at which a single look against ``b_min`` has the power asked for: the power holds
however rarely the results are read, and each extra look only adds to it. Without a
planned size, ``DEFAULT_PLANNED_PER_ARM`` users per arm is assumed. The boundary grows
slowly away from the size it is tuned to (alpha = 0.05: 3.82 at a tenth of it, 3.16 at a
third, 3.10 at three times, 3.25 at ten times, 3.57 at a hundred times). The planned
size must be fixed before the data come in: changing it during an experiment changes the
mixture, and the guarantee is only for one mixture.

Every function accepts numpy arrays as well as floats so that the simulations in the tests
run the very same formulas over thousands of runs and looks at once.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import overload

import numpy as np
import numpy.typing as npt
from scipy import optimize, stats

FloatArray = npt.NDArray[np.float64]

#: The planned users per arm the mixture is tuned to when the experiment has none.
DEFAULT_PLANNED_PER_ARM = 10_000


def _check_alpha(alpha: float, name: str = "alpha") -> None:
    if not (isinstance(alpha, int | float) and 0.0 < alpha < 1.0):
        raise ValueError(f"{name} must be in (0, 1), got {alpha!r}")


def boundary(r: float, alpha: float) -> float:
    """The ``|z|`` above which the always-valid p-value is below ``alpha``, at ``r = m t``."""
    _check_alpha(alpha)
    if not r > 0.0:
        return math.inf
    return math.sqrt((1.0 + r) / r * (2.0 * math.log(1.0 / alpha) + math.log1p(r)))


@lru_cache(maxsize=256)
def optimal_r(alpha: float) -> float:
    """``r*(alpha)``: where ``b(r)`` is smallest (deterministic bounded search on log r)."""
    _check_alpha(alpha)
    c = 2.0 * math.log(1.0 / alpha)

    def b2(log_r: float) -> float:
        r = math.exp(log_r)
        return (1.0 + r) / r * (c + math.log1p(r))

    found = optimize.minimize_scalar(
        b2, bounds=(-10.0, 15.0), method="bounded", options={"xatol": 1e-10}
    )
    return math.exp(float(found.x))


def min_boundary(alpha: float) -> float:
    """``b_min(alpha) = b(r*(alpha))``: the boundary at the size the mixture is tuned to."""
    return boundary(optimal_r(alpha), alpha)


def mixing_variance(planned_per_arm: int | None, alpha: float) -> float:
    """``t``: the standardised mixing variance tuned to ``planned_per_arm`` users per arm.

    ``tau^2 = t * p (1 - p)``; ``alpha`` is the level of one comparison (the caller divides
    by the number of comparisons when there are several).
    """
    planned = DEFAULT_PLANNED_PER_ARM if planned_per_arm is None else planned_per_arm
    if isinstance(planned, bool) or not isinstance(planned, int) or planned < 2:
        raise ValueError(f"planned_per_arm must be an integer >= 2, got {planned_per_arm!r}")
    return optimal_r(alpha) / (planned / 2.0)


def effective_size(n_control: float, n_variant: float) -> float:
    """``m = 1 / (1/n_c + 1/n_v)``, 0 when an arm is empty."""
    if n_control <= 0 or n_variant <= 0:
        return 0.0
    return n_control * n_variant / (n_control + n_variant)


@overload
def sequential_p(z: float, m: float, t: float) -> float: ...
@overload
def sequential_p(z: FloatArray, m: FloatArray | float, t: float) -> FloatArray: ...
def sequential_p(z: float | FloatArray, m: float | FloatArray, t: float) -> float | FloatArray:
    """``p_n = min(1, 1/Lambda_n)`` at one look: ``z`` the pooled z statistic, ``m`` the
    effective size, ``t`` the standardised mixing variance. Not yet the running minimum."""
    if not t > 0.0:
        raise ValueError(f"the mixing variance must be > 0, got {t!r}")
    r = np.asarray(m, dtype=np.float64) * t
    zz = np.asarray(z, dtype=np.float64)
    with np.errstate(over="ignore"):
        log_lambda = zz * zz * r / (2.0 * (1.0 + r)) - 0.5 * np.log1p(r)
        p = np.minimum(1.0, np.exp(-log_lambda))
    if np.ndim(p) == 0:
        return float(p)
    return p


@overload
def always_valid_p(z: float, m: float, previous: float = 1.0, *, t: float) -> float: ...
@overload
def always_valid_p(
    z: FloatArray, m: FloatArray | float, previous: FloatArray | float = 1.0, *, t: float
) -> FloatArray: ...
def always_valid_p(
    z: float | FloatArray,
    m: float | FloatArray,
    previous: float | FloatArray = 1.0,
    *,
    t: float,
) -> float | FloatArray:
    """The always-valid p after this look: ``min(previous, p_n)``.

    ``previous`` is the always-valid p of the last look (1.0 before the first). Keeping
    this running minimum across looks is the caller's job: store what this returns and
    pass it back next time.
    """
    prev = np.asarray(previous, dtype=np.float64)
    if np.any(~((prev >= 0.0) & (prev <= 1.0))):
        raise ValueError("previous always-valid p-values must be in [0, 1]")
    out = np.minimum(prev, sequential_p(np.asarray(z, dtype=np.float64), m, t))
    if np.ndim(out) == 0:
        return float(out)
    return out


def half_width(variance: float, m: float, t: float, alpha: float) -> float:
    """Half the width of the confidence sequence: ``sqrt(V_u) * b(m t)``."""
    return math.sqrt(max(variance, 0.0)) * boundary(m * t, alpha)


# -- planning ----------------------------------------------------------------------------


def sample_size_per_arm(
    baseline: float,
    mde_relative: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    arms: int = 2,
    sequential: bool = True,
) -> int:
    """Users per arm to detect a relative change of ``mde_relative`` from ``baseline``.

    With ``p1 = baseline``, ``p2 = baseline (1 + mde_relative)``, ``p = (p1 + p2) / 2``
    and the per-comparison level ``a = alpha / (arms - 1)`` (Bonferroni; Holm is never
    less powerful)::

        n = ( c sqrt(2 p (1 - p)) + z_(power) sqrt(p1 (1 - p1) + p2 (1 - p2)) )^2 / (p2 - p1)^2

    where ``c = z_(1 - a/2)`` for one fixed-horizon look, and ``c = b_min(a)``, the mSPRT
    boundary at the size its mixture is tuned to, when ``sequential``: then a single look
    at ``n`` (tuned to ``planned_per_arm = n``) already has the power, and earlier looks
    can only add to it.
    """
    for value, name in ((baseline, "baseline"), (alpha, "alpha"), (power, "power")):
        _check_alpha(value, name)
    if power < 0.5:
        raise ValueError(f"power must be in [0.5, 1), got {power!r}")
    if not (isinstance(mde_relative, int | float) and math.isfinite(mde_relative)):
        raise ValueError("mde_relative must be a finite number")
    if mde_relative == 0:
        raise ValueError("mde_relative must not be 0")
    if isinstance(arms, bool) or not isinstance(arms, int) or arms < 2:
        raise ValueError(f"arms must be an integer >= 2, got {arms!r}")
    p1 = float(baseline)
    p2 = p1 * (1.0 + mde_relative)
    if not 0.0 < p2 < 1.0:
        raise ValueError(f"baseline x (1 + mde_relative) = {p2:g} is not a rate in (0, 1)")
    a = alpha / (arms - 1)
    c = min_boundary(a) if sequential else float(stats.norm.isf(a / 2.0))
    z_power = float(stats.norm.ppf(power))
    pooled = (p1 + p2) / 2.0
    root = c * math.sqrt(2.0 * pooled * (1.0 - pooled)) + z_power * math.sqrt(
        p1 * (1.0 - p1) + p2 * (1.0 - p2)
    )
    return max(2, math.ceil(root * root / (p2 - p1) ** 2))
