"""An experiment, its per-variant counters and one user's assignment, as values built
from their rows (``from_row``); the configuration they hold is validated in
``domain/experiments.py``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clarion.domain.experiments import ExperimentConfig
from clarion.domain.types import ExperimentStatus

#: The counters of an arm, as named in ``experiment_arms``.
COUNTERS = ("users", "read", "clicked", "converted", "unsubscribed", "failed")


@dataclass(frozen=True, slots=True)
class Experiment:
    """One row of ``experiments``; ``config`` parsed once here (it was validated when
    stored)."""

    id: str
    name: str
    target_type: str | None
    target_template: str | None
    status: ExperimentStatus
    config: ExperimentConfig
    planned_per_arm: int
    created_at: datetime
    updated_at: datetime
    winner: str | None = None
    winner_at: datetime | None = None
    winner_reason: str | None = None
    started_at: datetime | None = None
    stopped_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Experiment:
        return cls(
            id=row["id"],
            name=row["name"],
            target_type=row["target_type"],
            target_template=row["target_template"],
            status=ExperimentStatus(row["status"]),
            config=ExperimentConfig.from_json(row["config"]),
            planned_per_arm=int(row["planned_per_arm"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            winner=row["winner"],
            winner_at=row["winner_at"],
            winner_reason=row["winner_reason"],
            started_at=row["started_at"],
            stopped_at=row["stopped_at"],
        )


@dataclass(frozen=True, slots=True)
class ExperimentArm:
    """One row of ``experiment_arms``: a variant's users and the users with each outcome,
    and the running minimum of its always-valid p-value (``None`` before the first
    decision)."""

    experiment_id: str
    variant: str
    users: int
    read: int
    clicked: int
    converted: int
    unsubscribed: int
    failed: int
    p_sequential: float | None

    def count(self, counter: str) -> int:
        """A counter by its column name (the metric and guardrails name theirs)."""
        if counter not in COUNTERS:
            raise KeyError(counter)
        return int(getattr(self, counter))

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> ExperimentArm:
        p = row["p_sequential"]
        return cls(
            experiment_id=row["experiment_id"],
            variant=row["variant"],
            users=int(row["users"]),
            read=int(row["read"]),
            clicked=int(row["clicked"]),
            converted=int(row["converted"]),
            unsubscribed=int(row["unsubscribed"]),
            failed=int(row["failed"]),
            p_sequential=None if p is None else float(p),
        )


@dataclass(frozen=True, slots=True)
class Assignment:
    """One row of ``experiment_assignments``: the variant a user got, for good, and when
    each of their outcomes was first counted."""

    experiment_id: str
    user_id: str
    variant: str
    assigned_at: datetime
    read_at: datetime | None
    clicked_at: datetime | None
    converted_at: datetime | None
    unsubscribed_at: datetime | None
    failed_at: datetime | None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Assignment:
        return cls(
            experiment_id=row["experiment_id"],
            user_id=row["user_id"],
            variant=row["variant"],
            assigned_at=row["assigned_at"],
            read_at=row["read_at"],
            clicked_at=row["clicked_at"],
            converted_at=row["converted_at"],
            unsubscribed_at=row["unsubscribed_at"],
            failed_at=row["failed_at"],
        )
