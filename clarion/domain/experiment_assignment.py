"""Which variant of an experiment a user gets (docs/experiments.md, "Assignment").

Deterministic: a hash of (experiment id, user id) is a number in [0, 1) that is the same on
every node, in every process and after restarts, with no coordination. The holdout takes
the bottom of the range, the variants share the rest in proportion to their weights. The
service records each user's first assignment, so that changing the weights later does not
move a user who has already been sent a variant.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HOLDOUT = "holdout"
_SPAN = float(1 << 64)


def unit(experiment_id: str, user_id: str) -> float:
    """The user's point in [0, 1) for this experiment (SHA-256, first 8 bytes)."""
    digest = hashlib.sha256(f"{experiment_id}\x00{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SPAN


def pick(point: float, variants: Sequence[tuple[str, float]], holdout: float) -> str:
    """The variant at ``point``: :data:`HOLDOUT` below ``holdout``, else the variant whose
    share of the rest (by weight) holds it."""
    if not variants:
        raise ValueError("an experiment has variants")
    if not 0.0 <= holdout < 1.0:
        raise ValueError("holdout is a share in [0, 1)")
    if point < holdout:
        return HOLDOUT
    return Assigner("", variants, holdout).at(point)


class Assigner:
    """:func:`assign` for one experiment's weights and holdout, checked and summed once
    (the same arithmetic, so the same variants): what a send in it pays per recipient."""

    def __init__(
        self, experiment_id: str, variants: Sequence[tuple[str, float]], holdout: float
    ) -> None:
        if not variants:
            raise ValueError("an experiment has variants")
        if not 0.0 <= holdout < 1.0:
            raise ValueError("holdout is a share in [0, 1)")
        total = sum(w for _, w in variants)
        if total <= 0 or any(w < 0 for _, w in variants):
            raise ValueError("weights are non-negative and not all zero")
        self.experiment_id = experiment_id
        self.holdout = holdout
        #: The hash with the experiment's part fed: a copy per user is :func:`unit`'s
        #: digest at less cost.
        self._prefix = hashlib.sha256(f"{experiment_id}\x00".encode())
        self._total = total
        self._bounds: list[tuple[str, float]] = []
        running = 0.0
        for key, w in variants:
            running += w
            self._bounds.append((key, running))

    def at(self, point: float) -> str:
        if point < self.holdout:
            return HOLDOUT
        at = (point - self.holdout) / (1.0 - self.holdout) * self._total
        for key, running in self._bounds:
            if at < running:
                return key
        return self._bounds[-1][0]  # rounding at the very top of the range

    def __call__(self, user_id: str) -> str:
        h = self._prefix.copy()
        h.update(user_id.encode())
        return self.at(int.from_bytes(h.digest()[:8], "big") / _SPAN)


def assign(
    experiment_id: str, user_id: str, variants: Sequence[tuple[str, float]], holdout: float
) -> str:
    return pick(unit(experiment_id, user_id), variants, holdout)
