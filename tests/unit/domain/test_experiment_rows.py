"""An experiment's rows as values: the status a member of its enum, the configuration
parsed once, an arm's counters read by the column name a metric or guardrail gives."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from clarion.domain.experiment_rows import Experiment, ExperimentArm
from clarion.domain.experiments import LIVE
from clarion.domain.types import ExperimentStatus

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CONFIG = {"variants": [{"key": "a", "weight": 50}, {"key": "b", "weight": 50, "title": "B"}]}


def test_an_experiment_row_parses_its_status_and_configuration() -> None:
    row = {
        "id": "x1",
        "name": "n",
        "target_type": "promo",
        "target_template": None,
        "status": "paused",
        "config": CONFIG,
        "planned_per_arm": "120",
        "created_at": NOW,
        "updated_at": NOW,
        "winner": None,
        "winner_at": None,
        "winner_reason": None,
        "started_at": NOW,
        "stopped_at": None,
    }
    got = Experiment.from_row(row)
    assert got.status is ExperimentStatus.PAUSED and got.status.live
    assert got.config.control == "a" and got.config.variant("b") is not None
    assert got.planned_per_arm == 120
    with pytest.raises(ValueError):
        Experiment.from_row({**row, "status": "archived"})


def test_live_statuses_are_those_that_decide_sends() -> None:
    assert set(LIVE) == {
        ExperimentStatus.RUNNING,
        ExperimentStatus.PAUSED,
        ExperimentStatus.COMPLETED,
    }
    assert not ExperimentStatus.DRAFT.live and not ExperimentStatus.STOPPED.live


def test_an_arm_reads_counters_by_column_name_and_nothing_else() -> None:
    arm = ExperimentArm.from_row(
        {
            "experiment_id": "x1",
            "variant": "b",
            "users": 10,
            "read": 4,
            "clicked": 2,
            "converted": 1,
            "unsubscribed": 0,
            "failed": 3,
            "p_sequential": None,
        }
    )
    assert [arm.count(c) for c in ("users", "read", "clicked", "failed")] == [10, 4, 2, 3]
    assert arm.p_sequential is None
    with pytest.raises(KeyError):
        arm.count("variant")
