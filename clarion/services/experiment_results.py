"""What an experiment looks like in the API, and its results: per-variant counts, the
statistics of domain/experiment_stats.py, guardrails, the sample-ratio check and the
verdict (docs/experiments.md, "Results")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from clarion.domain.experiment_assignment import HOLDOUT
from clarion.domain.experiment_rows import Experiment, ExperimentArm
from clarion.domain.experiments import arms_of, planned_note
from clarion.services.clock import as_utc

#: Guardrail -> the arm counter it reads.
GUARDRAIL_COUNTERS = {"opt_out": "unsubscribed", "delivery_failure": "failed"}


def _iso(value: Any) -> str | None:
    return None if value is None else as_utc(value).isoformat()


def experiment_json(row: Experiment) -> dict[str, Any]:
    config = row.config
    return {
        "id": row.id,
        "name": row.name,
        "target_type": row.target_type,
        "target_template": row.target_template,
        "status": row.status.value,
        **config.to_json(),
        "control": config.control,
        "planned_per_arm": row.planned_per_arm,
        "planned": planned_note(config, row.planned_per_arm),
        "winner": row.winner,
        "winner_at": _iso(row.winner_at),
        "winner_reason": row.winner_reason,
        "started_at": _iso(row.started_at),
        "stopped_at": _iso(row.stopped_at),
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
    }


def results(row: Experiment, counted: Mapping[str, ExperimentArm]) -> dict[str, Any]:
    # Loaded on first use (scipy, numpy): see services/experiments.py.
    from clarion.domain import experiment_stats as stats

    config = row.config
    metric_column = {"read": "read", "clicked": "clicked", "converted": "converted"}[config.metric]

    def arm(key: str) -> stats.Arm:
        c = counted.get(key)
        users = c.users if c else 0
        return stats.Arm(key, users, c.count(metric_column) if c else 0)

    control = arm(config.control)
    variants = [arm(v.key) for v in config.variants[1:]]
    guard_failed: set[str] = set()
    guard_out: dict[str, dict[str, Any]] = {}
    for v in config.variants[1:]:
        for g in config.guardrails:
            column = GUARDRAIL_COUNTERS[g]
            c, t = counted.get(config.control), counted.get(v.key)
            ce, cu = (c.count(column), c.users) if c else (0, 0)
            ve, vu = (t.count(column), t.users) if t else (0, 0)
            worse = bool(cu and vu) and stats.guardrail_worse(ce, cu, ve, vu, alpha=config.alpha)
            guard_out.setdefault(v.key, {})[g] = {
                "control_rate": ce / cu if cu else None,
                "rate": ve / vu if vu else None,
                "worse": worse,
            }
            if worse:
                guard_failed.add(v.key)
    observed = {k: counted[k].users if k in counted else 0 for k in arms_of(config)}
    expected_weights = {v.key: v.weight * (100.0 - config.holdout) / 100.0 for v in config.variants}
    if config.holdout > 0:
        expected_weights[HOLDOUT] = config.holdout
    srm = stats.srm(observed, expected_weights) if sum(observed.values()) > 0 else None
    previous = {k: c.p_sequential for k, c in counted.items() if c.p_sequential is not None}
    verdict = stats.verdict(
        control,
        variants,
        alpha=config.alpha,
        previous_p=previous,
        guardrails_failed=guard_failed,
        srm_flagged=bool(srm and srm.flagged),
        planned_per_arm=row.planned_per_arm,
    )
    comparisons = {c.variant: c for c in verdict.comparisons}
    arms_out = []
    for key in arms_of(config):
        a = arm(key)
        c = counted.get(key)
        item: dict[str, Any] = {
            "variant": key,
            "users": a.users,
            "successes": a.successes,
            "rate": a.successes / a.users if a.users else None,
            "outcomes": {
                k: c.count(k) if c else 0
                for k in ("read", "clicked", "converted", "unsubscribed", "failed")
            },
        }
        comp = comparisons.get(key)
        if comp is not None:
            item.update(
                lift=comp.lift,
                diff=comp.diff,
                ci=[comp.ci_low, comp.ci_high],
                p_value=comp.p_value,
                p_sequential=comp.p_sequential,
                p_adjusted=verdict.adjusted_p.get(key),
                confidence_sequence=[comp.seq_low, comp.seq_high],
                prob_beats_control=comp.prob_beats_control,
                guardrails=guard_out.get(key, {}),
            )
        arms_out.append(item)
    return {
        "experiment": experiment_json(row),
        "metric": config.metric,
        "control": config.control,
        "arms": arms_out,
        "srm": None
        if srm is None
        else {"p_value": srm.p_value, "flagged": srm.flagged, "expected": dict(srm.expected)},
        "verdict": {
            "state": "winner" if row.winner else verdict.state,
            "winner": row.winner or verdict.winner,
            "reason": row.winner_reason or verdict.reason,
            "adjusted_p": dict(verdict.adjusted_p),
        },
        "winner": row.winner,
        "winner_at": _iso(row.winner_at),
    }
