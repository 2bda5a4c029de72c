"""A/B experiments (docs/experiments.md): their life (draft, running, paused, stopped,
completed), which variant each recipient of a send gets, and the results.

Sends: the sending service asks :meth:`ExperimentService.split_many` which recipients of a send
get which variant of the live experiment on its type (or stored template), plans each
group with the variant's changes, and writes the first assignments with the send, in its
transaction. Outcomes (read, clicked, converted, unsubscribed, a dead delivery) are counted
once per user by the rollup follower (:meth:`fold`), so results read a few counters.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.domain.events import event_row
from clarion.domain.experiment_assignment import HOLDOUT, Assigner
from clarion.domain.experiment_rows import Experiment
from clarion.domain.experiments import (
    check_same_variants,
    content_patch,
    identity,
    validated,
)
from clarion.domain.send_command import SendCommand
from clarion.domain.types import EventType, ExperimentStatus
from clarion.errors import Conflict, LiveTargetTaken, NotFound, ValidationFailed
from clarion.services.clock import utcnow
from clarion.services.experiment_results import experiment_json as _json
from clarion.services.experiment_results import results as _results
from clarion.services.experiment_split import Group, Live, Split, routes_of, split_send
from clarion.store import events as event_store
from clarion.store import experiments as store
from clarion.store.db import Database

#: How long a process trusts its list of live experiments (changes made through this
#: process are seen at once; another node's within this many seconds).
LIVE_TTL = 2.0
#: Recorded assignments one process keeps per experiment before starting over.
SEEN_LIMIT = 200_000
#: Outcome events the follower counts per user.
OUTCOME_EVENTS = {
    EventType.READ.value: "read",
    EventType.CLICKED.value: "clicked",
    EventType.CONVERTED.value: "converted",
    EventType.UNSUBSCRIBED.value: "unsubscribed",
    EventType.DEAD.value: "dead",
}


#: Which statuses each transition starts from (the dashboard shows only these buttons).
TRANSITIONS = {
    "start": (ExperimentStatus.DRAFT, ExperimentStatus.PAUSED),
    "pause": (ExperimentStatus.RUNNING,),
    "stop": (ExperimentStatus.RUNNING, ExperimentStatus.PAUSED, ExperimentStatus.COMPLETED),
    "promote": (ExperimentStatus.RUNNING, ExperimentStatus.PAUSED),
}


class AssignmentsMoved(Exception):
    """Raised in a send's transaction (which then rolls back) when users this process took
    for unassigned had been recorded with another variant (by another process, before the
    weights changed): ``found`` holds their variants, per experiment, to split again with."""

    def __init__(self, found: Mapping[str, Mapping[str, str]]) -> None:
        super().__init__("recorded assignments differ from the ones planned")
        self.found = found


class ExperimentService:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._live: list[Live] = []
        #: The live experiments by target type and by target template.
        self._by_type: dict[str, Live] = {}
        self._by_template: dict[str, Live] = {}
        self._live_until = 0.0
        #: Recorded assignments seen by this process, per experiment (bounded).
        self._seen: dict[str, dict[str, str]] = {}
        #: When :meth:`run_once` next decides (monotonic seconds; 0: at its first call).
        self._next_decide = 0.0

    def learn(self, found: Mapping[str, Mapping[str, str]]) -> None:
        """Keep recorded assignments (experiment -> user -> variant): they never change."""
        for experiment_id, users in found.items():
            seen = self._seen.setdefault(experiment_id, {})
            if len(seen) + len(users) > SEEN_LIMIT:
                seen.clear()
            seen.update(users)

    # --- configuration -------------------------------------------------------------------
    async def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name, target_type, target_template = identity(body)
        config = validated(body)
        now = utcnow()
        # The statistics (scipy, numpy) load on first use: every process imports this
        # module, few compute a planned size or results.
        from clarion.domain import experiment_stats as stats

        per_arm = stats.sample_size_per_arm(
            config.baseline,
            config.mde,
            alpha=config.alpha,
            power=config.power,
            arms=len(config.variants),
        )
        draft = Experiment(
            id=str(uuid.uuid4()),
            name=name,
            target_type=target_type,
            target_template=target_template,
            status=ExperimentStatus.DRAFT,
            config=config,
            planned_per_arm=per_arm,
            created_at=now,
            updated_at=now,
        )
        async with self._db.begin() as conn:
            await store.insert(conn, draft)
            made = await store.get(conn, draft.id)
        assert made is not None
        return _json(made)

    async def list_all(self, status: str | None, limit: int) -> list[dict[str, Any]]:
        wanted = None if status is None else ExperimentStatus(status)
        async with self._db.connect() as conn:
            return [_json(r) for r in await store.list_all(conn, wanted, limit)]

    async def get(self, experiment_id: str) -> dict[str, Any]:
        async with self._db.connect() as conn:
            row = await store.get(conn, experiment_id)
        if row is None:
            raise NotFound("no such experiment")
        return _json(row)

    async def update(self, experiment_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """A draft changes anything; a running or paused experiment its name, weights,
        holdout and automatic winner (users already assigned keep their variant)."""
        async with self._db.begin() as conn:
            row = await self._locked(conn, experiment_id)
            current = row.config.to_json()
            values: dict[str, Any] = {}
            if row.status is ExperimentStatus.DRAFT:
                merged = {**current, **{k: v for k, v in body.items() if k in current}}
                config = validated(merged)
                if "name" in body or "target_type" in body or "target_template" in body:
                    name, tt, tk = identity({**_identity_of(row), **body})
                    values.update(name=name, target_type=tt, target_template=tk)
            elif row.status in (ExperimentStatus.RUNNING, ExperimentStatus.PAUSED):
                allowed = {"name", "variants", "holdout", "auto_winner", "holdout_after_winner"}
                extra = sorted(set(body) - allowed)
                if extra:
                    raise Conflict(
                        f"a {row.status} experiment cannot change {', '.join(extra)}",
                        {"status": row.status.value},
                    )
                if "variants" in body:
                    check_same_variants(current["variants"], body["variants"])
                config = validated({**current, **{k: v for k, v in body.items() if k != "name"}})
                if "name" in body:
                    values["name"] = identity({**_identity_of(row), "name": body["name"]})[0]
            else:
                raise Conflict(
                    f"a {row.status} experiment cannot change", {"status": row.status.value}
                )
            values.update(config=config.to_json(), updated_at=utcnow())
            await store.change(conn, experiment_id, **values)
            row = await self._locked(conn, experiment_id)  # as written
        self._live_until = 0.0
        return _json(row)

    async def delete(self, experiment_id: str) -> None:
        async with self._db.begin() as conn:
            row = await self._locked(conn, experiment_id)
            if row.status in (ExperimentStatus.RUNNING, ExperimentStatus.PAUSED):
                raise Conflict(
                    "stop the experiment before deleting it", {"status": row.status.value}
                )
            await store.remove(conn, experiment_id)
        self._live_until = 0.0

    async def transition(
        self, experiment_id: str, action: str, variant: str | None = None
    ) -> dict[str, Any]:
        """start | pause | stop | promote (with ``variant``)."""
        now = utcnow()
        async with self._db.begin() as conn:
            row = await self._locked(conn, experiment_id)
            status = row.status
            if status not in TRANSITIONS[action]:
                raise Conflict(
                    f"cannot {action} a {status} experiment",
                    {"status": status.value, "action": action},
                )
            values: dict[str, Any] = {"updated_at": now}
            if action == "start":
                values.update(status=ExperimentStatus.RUNNING, started_at=row.started_at or now)
            elif action == "pause":
                values["status"] = ExperimentStatus.PAUSED
            elif action == "stop":
                values.update(status=ExperimentStatus.STOPPED, stopped_at=now)
            else:
                if variant is None or row.config.variant(variant) is None:
                    raise ValidationFailed(
                        f"{variant!r} is not a variant of this experiment",
                        [{"field": "variant", "problem": "one of the experiment's variants"}],
                    )
                values.update(
                    status=ExperimentStatus.COMPLETED,
                    winner=variant,
                    winner_at=now,
                    winner_reason="promoted by hand",
                )
                await self._promoted_event(conn, experiment_id, variant, now)
            try:
                await store.change(conn, experiment_id, **values)
            except LiveTargetTaken as exc:  # the target the caller should look at
                target = {"target_type": row.target_type, "target_template": row.target_template}
                raise LiveTargetTaken(exc.message, target) from exc
            row = await self._locked(conn, experiment_id)  # as written
        self._live_until = 0.0
        return _json(row)

    async def _locked(self, conn: AsyncConnection, experiment_id: str) -> Experiment:
        row = await store.get(conn, experiment_id, lock=True)
        if row is None:
            raise NotFound("no such experiment")
        return row

    async def _promoted_event(
        self, conn: AsyncConnection, experiment_id: str, variant: str, now: datetime
    ) -> None:
        await event_store.append(
            conn,
            [
                event_row(
                    EventType.PROMOTED,
                    now,
                    user_id=None,
                    dims={"experiment": experiment_id, "variant": variant},
                    data={"experiment_id": experiment_id},
                )
            ],
        )

    # --- sends ---------------------------------------------------------------------------
    async def live(self) -> list[Live]:
        if time.monotonic() >= self._live_until:
            async with self._db.connect() as conn:
                rows = await store.live(conn)
            live = []
            for r in rows:
                if r.status is ExperimentStatus.PAUSED:  # sends go out as they are
                    continue
                config = r.config
                patches = {v.key: content_patch(v) for v in config.variants}
                exp = Live(
                    r.id,
                    config,
                    r.winner,
                    r.target_type,
                    r.target_template,
                    patches,
                    Assigner(r.id, config.weights(), config.holdout / 100.0),
                )
                live.append(dataclasses.replace(exp, routes=routes_of(exp)))
            self._live = live
            # One experiment is live per target; a send whose type has one is not
            # looked up by its template.
            self._by_type = {e.target_type: e for e in live if e.target_type is not None}
            self._by_template = {
                e.target_template: e for e in live if e.target_template is not None
            }
            ids = {r.id for r in rows}
            for gone in [x for x in self._seen if x not in ids]:
                del self._seen[gone]  # stopped or deleted: its users are not sent again
            self._live_until = time.monotonic() + LIVE_TTL
        return self._live

    async def split_many(self, sends: Sequence[tuple[SendCommand, Sequence[str]]]) -> list[Split]:
        """Which recipients of each send get which variant; one group without an
        experiment for a send whose type or template has no live experiment.

        Nothing is read here: a user this process has seen recorded keeps that variant,
        any other gets the hash's (``Split.chosen``). :meth:`record_many`, in the sends'
        transaction, records those and finds any recorded before by another process; if
        one's variant differs (the weights changed since), it raises
        :class:`AssignmentsMoved` and the group is split again."""
        await self.live()
        if not self._by_type and not self._by_template:
            return [Split([Group(cmd, list(uids))]) for cmd, uids in sends]
        out = []
        for cmd, uids in sends:
            exp = self._by_type.get(cmd.type)
            if exp is None and cmd.template_key is not None:
                exp = self._by_template.get(cmd.template_key)
            if exp is None or not uids:
                out.append(Split([Group(cmd, list(uids))]))
            else:
                out.append(split_send(exp, cmd, uids, self._seen.get(exp.id, {})))
        return out

    async def record_many(
        self, conn: AsyncConnection, splits: Sequence[tuple[Split, SendCommand]], now: datetime
    ) -> dict[str, dict[str, str]]:
        """In the sends' transaction: the first assignments (one statement per experiment)
        and a ``suppressed`` event (reason ``holdout``) per held-out recipient. Returns the
        assignments now known to be recorded, for :meth:`learn` once the transaction has
        committed; raises :class:`AssignmentsMoved` when a user was recorded before with
        another variant than the send was split with."""
        chosen: dict[str, dict[str, str]] = {}
        held: list[dict[str, Any]] = []
        for split, cmd in splits:
            if split.experiment_id is None:
                continue
            chosen.setdefault(split.experiment_id, {}).update(split.chosen)
            if split.holdout:
                dims = {
                    "ntype": cmd.type,
                    "template": str(cmd.template),
                    "template_key": cmd.template_key,
                    "priority": str(cmd.priority),
                    "experiment": split.experiment_id,
                    "variant": HOLDOUT,
                }
                held += [
                    event_row(EventType.SUPPRESSED, now, user_id=uid, dims=dims, reason=HOLDOUT)
                    for uid in split.holdout
                ]
        if held:
            await event_store.append(conn, held)
        known: dict[str, dict[str, str]] = {}
        moved: dict[str, dict[str, str]] = {}
        for exp_id, users in chosen.items():
            recorded, before = await store.record(conn, exp_id, users, now)
            known[exp_id] = {**recorded, **before}
            differ = {u: v for u, v in before.items() if users[u] != v}
            if differ:
                moved[exp_id] = differ
        if moved:
            raise AssignmentsMoved(moved)
        return known

    # --- outcomes, from the rollup follower ------------------------------------------------
    async def fold(self, conn: AsyncConnection, page: Sequence[Mapping[Any, Any]]) -> None:
        """Count each user's first outcome per experiment (in the follower's transaction,
        so exactly once)."""
        deltas: dict[tuple[str, str], dict[str, int]] = {}
        for e in page:
            exp, outcome = e.get("experiment"), OUTCOME_EVENTS.get(str(e["type"]))
            if exp is None or outcome is None or e.get("user_id") is None:
                continue
            variant = await store.mark_outcome(
                conn, str(exp), str(e["user_id"]), outcome, e["created_at"]
            )
            if variant is not None:
                column = store.OUTCOMES[outcome][1]
                slot = deltas.setdefault((str(exp), variant), {})
                slot[column] = slot.get(column, 0) + 1
        by_exp: dict[str, dict[str, dict[str, int]]] = {}
        for (exp_id, variant), counts in deltas.items():
            by_exp.setdefault(exp_id, {})[variant] = counts
        for exp_id, per_variant in by_exp.items():
            await store.add_to_arms(conn, exp_id, per_variant)

    # --- results -------------------------------------------------------------------------
    async def results(self, experiment_id: str) -> dict[str, Any]:
        async with self._db.connect() as conn:
            row = await store.get(conn, experiment_id)
            if row is None:
                raise NotFound("no such experiment")
            counted = await store.arms_of(conn, experiment_id)
        return _results(row, counted)

    async def decide(self, experiment_id: str) -> dict[str, Any]:
        """Results, with the running minimum of each always-valid p-value kept, and the
        automatic winner promoted when the verdict names one."""
        now = utcnow()
        async with self._db.begin() as conn:
            row = await self._locked(conn, experiment_id)
            counted = await store.arms_of(conn, experiment_id)
            out = _results(row, counted)
            await store.set_p(conn, experiment_id, out["verdict"]["adjusted_p"])
            verdict = out["verdict"]
            if (
                row.status is ExperimentStatus.RUNNING
                and row.config.auto_winner
                and verdict["state"] == "winner"
                and verdict["winner"] is not None
            ):
                await store.change(
                    conn,
                    experiment_id,
                    status=ExperimentStatus.COMPLETED,
                    winner=verdict["winner"],
                    winner_at=now,
                    winner_reason=verdict["reason"],
                    updated_at=now,
                )
                await self._promoted_event(conn, experiment_id, verdict["winner"], now)
                self._live_until = 0.0
                row = await self._locked(conn, experiment_id)  # as written
                out = _results(row, counted)
        return out

    async def run_once(self) -> int:
        """For the pipeline loop: decide every running experiment with an automatic
        winner, at most once a minute."""
        now = time.monotonic()
        if now < self._next_decide:
            return 0
        self._next_decide = now + 60.0
        promoted = 0
        for exp in await self.live():
            if exp.winner is None and exp.config.auto_winner:
                got = await self.decide(exp.id)
                promoted += got["winner"] is not None
        return promoted


def _identity_of(row: Experiment) -> dict[str, Any]:
    return {
        "name": row.name,
        "target_type": row.target_type,
        "target_template": row.target_template,
    }


__all__ = ["TRANSITIONS", "AssignmentsMoved", "ExperimentService"]
