"""Experiments, who got which variant, and the per-variant counters results read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.domain.experiment_rows import COUNTERS, Assignment, Experiment, ExperimentArm
from clarion.domain.experiments import LIVE
from clarion.domain.types import ExperimentStatus
from clarion.errors import LiveTargetTaken
from clarion.store import bulk
from clarion.store.dialect import insert_ignore, one_of, upsert
from clarion.store.schema import experiment_arms, experiment_assignments, experiments

ex, asg, arms = experiments, experiment_assignments, experiment_arms
#: First assignments, their arms' user counts and the assignments recorded before, in ONE
#: round trip: the data-modifying CTEs run whether or not the outer query reads them, and
#: the outer query's snapshot is the statement's start, so it sees the rows recorded
#: before this statement (not those ``new`` inserts). It returns only the users that were
#: not inserted (usually none, so a group decodes no rows): with the variant recorded
#: before, or NULL when a transaction still running at the statement's start recorded
#: them. The arms are upserted in variant order, as every writer of them does (no
#: deadlock).
_RECORD_SQL = (
    "WITH given AS ("
    " SELECT * FROM unnest($2::varchar[], $3::varchar[]) AS g(user_id, variant)),"
    " new AS ("
    " INSERT INTO experiment_assignments (experiment_id, user_id, variant, assigned_at)"
    " SELECT $1, user_id, variant, $4::timestamptz FROM given"
    " ON CONFLICT DO NOTHING RETURNING user_id, variant),"
    " counted AS ("
    " INSERT INTO experiment_arms (experiment_id, variant, users)"
    " SELECT $1, variant, count(*) FROM new GROUP BY variant ORDER BY variant"
    " ON CONFLICT (experiment_id, variant)"
    " DO UPDATE SET users = experiment_arms.users + excluded.users)"
    " SELECT old.user_id, a.variant"
    " FROM (SELECT user_id FROM given EXCEPT SELECT user_id FROM new) AS old"
    " LEFT JOIN experiment_assignments a"
    " ON a.experiment_id = $1 AND a.user_id = old.user_id"
)
#: Outcome -> (the assignment's flag column, the arm's counter column).
OUTCOMES = {
    "read": ("read_at", "read"),
    "clicked": ("clicked_at", "clicked"),
    "converted": ("converted_at", "converted"),
    "unsubscribed": ("unsubscribed_at", "unsubscribed"),
    "dead": ("failed_at", "failed"),
}


async def insert(conn: AsyncConnection, experiment: Experiment) -> None:
    row = {f.name: getattr(experiment, f.name) for f in fields(experiment)}
    row.update(status=experiment.status.value, config=experiment.config.to_json())
    await conn.execute(ex.insert(), row)


async def get(
    conn: AsyncConnection, experiment_id: str, *, lock: bool = False
) -> Experiment | None:
    stmt = select(ex).where(ex.c.id == experiment_id)
    if lock:
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).first()
    return None if row is None else Experiment.from_row(row._mapping)


async def list_all(
    conn: AsyncConnection, status: ExperimentStatus | None, limit: int
) -> list[Experiment]:
    stmt = select(ex).order_by(ex.c.created_at.desc(), ex.c.id).limit(limit)
    if status is not None:
        stmt = stmt.where(ex.c.status == status.value)
    return [Experiment.from_row(r._mapping) for r in await conn.execute(stmt)]


async def live(conn: AsyncConnection) -> list[Experiment]:
    """Experiments that decide their target's sends now."""
    stmt = select(ex).where(ex.c.status.in_([s.value for s in LIVE]))
    return [Experiment.from_row(r._mapping) for r in await conn.execute(stmt)]


async def change(conn: AsyncConnection, experiment_id: str, **values: Any) -> None:
    """Set columns of one experiment. Raises :class:`LiveTargetTaken` when the change
    would make it a second live experiment on its target: the live-target indexes are the
    only constraints a change can break (its id never changes, the service sets every
    required column). On PostgreSQL the transaction is then aborted, so the caller lets
    the error end it."""
    if "status" in values:
        values["status"] = ExperimentStatus(values["status"]).value
    try:
        await conn.execute(update(ex).where(ex.c.id == experiment_id).values(**values))
    except IntegrityError as exc:
        raise LiveTargetTaken(
            "another experiment on the same target is live; stop it first"
        ) from exc


async def remove(conn: AsyncConnection, experiment_id: str) -> None:
    await conn.execute(delete(arms).where(arms.c.experiment_id == experiment_id))
    await conn.execute(delete(asg).where(asg.c.experiment_id == experiment_id))
    await conn.execute(delete(ex).where(ex.c.id == experiment_id))


async def assigned(
    conn: AsyncConnection, experiment_id: str, user_ids: Sequence[str]
) -> dict[str, str]:
    """The recorded variants of these users."""
    if not user_ids:
        return {}
    # One statement text whatever the number of users (an array on PostgreSQL).
    stmt = select(asg.c.user_id, asg.c.variant).where(
        asg.c.experiment_id == experiment_id, one_of(conn, asg.c.user_id, list(user_ids))
    )
    return {str(u): str(v) for u, v in await conn.execute(stmt)}


async def record(
    conn: AsyncConnection, experiment_id: str, chosen: Mapping[str, str], now: datetime
) -> tuple[dict[str, str], dict[str, str]]:
    """Record first assignments (``chosen``: user -> variant) and count each new one in its
    arm. Returns ``(recorded, before)``: the users recorded now, and those of ``chosen``
    recorded before with the variant recorded then (it stays theirs). A user recorded
    meanwhile by a transaction still running when this one started is in neither."""
    if not chosen:
        return {}, {}
    users = list(chosen)
    recorded: dict[str, str] = {}
    before: dict[str, str] = {}
    driver = await bulk.driver_in_transaction(conn)
    if driver is not None:  # one prepared text whatever the number of users
        got = await driver.fetch(_RECORD_SQL, experiment_id, users, list(chosen.values()), now)
        recorded = dict(chosen)
        for user_id, variant in got:  # not inserted now
            del recorded[user_id]
            if variant is not None:
                before[user_id] = variant
        return recorded, before
    rows = [
        {"experiment_id": experiment_id, "user_id": u, "variant": v, "assigned_at": now}
        for u, v in chosen.items()
    ]
    stmt = insert_ignore(conn, asg).returning(asg.c.user_id, asg.c.variant)
    recorded = {str(u): str(v) for u, v in (await conn.execute(stmt, rows)).all()}
    others = [u for u in users if u not in recorded]
    if others:
        before = await assigned(conn, experiment_id, others)
    counts: dict[str, int] = {}
    for variant in recorded.values():
        counts[variant] = counts.get(variant, 0) + 1
    await add_to_arms(conn, experiment_id, {v: {"users": n} for v, n in counts.items()})
    return recorded, before


_ARMS_UPSERT: dict[str, Any] = {}


def _arms_upsert(conn: AsyncConnection) -> Any:
    """Built once per dialect: every counter added, whichever moved."""
    stmt = _ARMS_UPSERT.get(conn.dialect.name)
    if stmt is None:
        base = upsert(conn, arms)
        stmt = _ARMS_UPSERT[conn.dialect.name] = base.on_conflict_do_update(
            index_elements=["experiment_id", "variant"],
            set_={k: arms.c[k] + base.excluded[k] for k in COUNTERS},
        )
    return stmt


async def add_to_arms(
    conn: AsyncConnection, experiment_id: str, deltas: Mapping[str, Mapping[str, int]]
) -> None:
    """Add to the variants' counters: one statement for all of them."""
    rows = [
        {
            "experiment_id": experiment_id,
            "variant": variant,
            **{k: int(counts.get(k, 0)) for k in COUNTERS},
        }
        for variant, counts in sorted(deltas.items())
        if counts
    ]
    if rows:
        await bulk.insert(conn, arms, rows, _arms_upsert(conn))


async def mark_outcome(
    conn: AsyncConnection, experiment_id: str, user_id: str, outcome: str, at: datetime
) -> str | None:
    """Flag the user's first ``outcome`` in the experiment; the variant when this was the
    first (``None``: flagged before, or not assigned)."""
    flag, _ = OUTCOMES[outcome]
    stmt = (
        update(asg)
        .where(
            asg.c.experiment_id == experiment_id,
            asg.c.user_id == user_id,
            asg.c[flag].is_(None),
        )
        .values({flag: at})
        .returning(asg.c.variant)
    )
    got = (await conn.execute(stmt)).first()
    return None if got is None else str(got[0])


async def arms_of(conn: AsyncConnection, experiment_id: str) -> dict[str, ExperimentArm]:
    stmt = select(arms).where(arms.c.experiment_id == experiment_id)
    return {str(r.variant): ExperimentArm.from_row(r._mapping) for r in await conn.execute(stmt)}


async def set_p(conn: AsyncConnection, experiment_id: str, p_values: Mapping[str, float]) -> None:
    for variant, p in p_values.items():
        await conn.execute(
            update(arms)
            .where(arms.c.experiment_id == experiment_id, arms.c.variant == variant)
            .values(p_sequential=p)
        )


async def latest_assignment(conn: AsyncConnection, user_id: str) -> Assignment | None:
    """The user's most recent assignment in a live experiment (for a conversion nothing
    is credited with: a holdout user's)."""
    stmt = (
        select(asg)
        .join(ex, ex.c.id == asg.c.experiment_id)
        .where(asg.c.user_id == user_id, ex.c.status.in_([s.value for s in LIVE]))
        .order_by(asg.c.assigned_at.desc())
        .limit(1)
    )
    row = (await conn.execute(stmt)).first()
    return None if row is None else Assignment.from_row(row._mapping)
