"""Accepting notifications: recipients -> rows, in ONE transaction with the outbox.

``POST /notifications`` ends here. The notification rows, one delivery row per non-inbox
channel (the outbox the workers drain), the unread counters and the ``accepted`` events
commit together, so an accepted notification can never be half-written; listeners (live
inbox pushes, worker wake-ups) hear about it only after the commit.

The row-writing part is :meth:`SendingService.write`, which runs inside a caller's
transaction: the batch flusher and the scheduler write a notification in the same
transaction that marks their batch flushed or their scheduled send sent, which is what
makes each go out exactly once. Before writing, :class:`~clarion.services.planner.Planner`
decides per recipient (template, batch, preferences, quiet hours, rate limits).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.domain.content import validate_content
from clarion.domain.events import event_row
from clarion.domain.send_command import SendCommand
from clarion.domain.types import EventType
from clarion.errors import ClarionError, StorageError, ValidationFailed
from clarion.metrics import NOTIFICATIONS_ACCEPTED, SEND_GROUP_SIZE
from clarion.services import send_rows
from clarion.services.clock import as_utc, utcnow
from clarion.services.experiment_split import Group, Split
from clarion.services.experiments import AssignmentsMoved, ExperimentService
from clarion.services.idempotency import IdempotencyRequest, IdempotencyService, Replay
from clarion.services.inbox import InboxListener
from clarion.services.planner import Planner, RecipientPlan, Recipients
from clarion.services.send_rows import Written
from clarion.store import events as event_store
from clarion.store import idempotency as idem_store
from clarion.store import scheduled as scheduled_store
from clarion.store.db import Database
from clarion.store.users import InboxMarks

log = logging.getLogger("clarion.sending")
_FRESH = InboxMarks(0, 0, 0, 0, None, None)

#: Most recipients one group commit writes (a bulk send of 1,000 is a group of its own).
GROUP_RECIPIENTS = 1000
#: Groups in flight at once: one being planned while another commits.
GROUP_WRITERS = 2
#: Times a group is split and planned again when its users turn out to have been recorded
#: in an experiment with other variants than this process assumed (services/experiments.py).
REPLANS = 3
SCHEDULE_SKEW = timedelta(seconds=5)  # a scheduled_for this far in the past is still "now"
SCHEDULE_HORIZON = timedelta(days=366)


@dataclass(frozen=True)
class _Job:
    """One send waiting for the group writer."""

    cmd: SendCommand
    user_ids: list[str]
    content: dict[str, Any]
    idempotency: IdempotencyRequest | None
    #: What the send came to: written, or the replay of the send that holds its key.
    future: asyncio.Future[Written | Replay]


@dataclass(frozen=True)
class _Planned:
    """A send's plans: one part per variant (one part without an experiment)."""

    parts: list[tuple[SendCommand, list[RecipientPlan]]]
    split: Split


@dataclass(frozen=True)
class Accepted:
    status_code: int
    body: dict[str, Any]
    replayed: bool = False


class SendingService:
    def __init__(
        self,
        db: Database,
        idempotency: IdempotencyService,
        planner: Planner,
        *,
        max_recipients: int,
    ) -> None:
        self._db = db
        self._idem = idempotency
        self.planner = planner
        #: Set by the container: live experiments change what their sends' recipients get.
        self.experiments: ExperimentService | None = None
        self._max_recipients = max_recipients
        self.listeners: list[InboxListener] = []
        self._queue: deque[_Job] = deque()
        self._writers = 0
        self._writer_tasks: set[asyncio.Task[None]] = set()

    def content_of(self, cmd: SendCommand) -> dict[str, Any]:
        """The validated in-app payload (``ValidationFailed`` listing every problem). With a
        template the title may be left out: the template's ``in_app.title`` fills it."""
        return validate_content(
            cmd.template,
            title=cmd.title or cmd.template_key or "",
            message=cmd.message,
            media=cmd.media,
            actions=cmd.actions,
            extra=cmd.content,
        )

    async def send(
        self, cmd: SendCommand, idempotency: IdempotencyRequest | None = None
    ) -> Accepted:
        user_ids = list(dict.fromkeys(cmd.user_ids))  # de-duplicated, order kept
        if not user_ids:
            raise ValidationFailed("no recipients", [{"field": "user_ids"}])
        if len(user_ids) > self._max_recipients:
            raise ValidationFailed(
                f"at most {self._max_recipients} recipients per request",
                [{"field": "user_ids", "problem": "too_many"}],
            )
        content = self.content_of(cmd)
        now = utcnow()
        if cmd.scheduled_for is not None:
            check_schedule(cmd.scheduled_for, now)
            if cmd.template_key:
                await self.planner.check_template(cmd.template_key)
        if idempotency is not None:
            replay = await self._idem.lookup(idempotency)
            if replay is not None:
                return Accepted(replay.status_code, replay.body, replayed=True)
        outcome: Written | Replay | dict[str, Any]
        if cmd.scheduled_for is None:
            # From here the group writer owns the send: it claims the idempotency key in
            # the send's own transaction, even if this request goes away meanwhile.
            job = _Job(
                cmd, user_ids, content, idempotency, asyncio.get_running_loop().create_future()
            )
            outcome = await self._submit(job)
        else:
            outcome = await self._schedule(cmd, user_ids, idempotency, now)
        if isinstance(outcome, Replay):
            return Accepted(outcome.status_code, outcome.body, replayed=True)
        return Accepted(202, outcome if isinstance(outcome, dict) else outcome.body())

    # -- group commit -------------------------------------------------------------------
    #
    # Concurrent sends are written together: a send joins a queue, and a writer task takes
    # everything queued (up to GROUP_RECIPIENTS recipients), reads all their recipients in
    # one round trip, plans each send, and writes them in ONE transaction with one
    # statement per table. Nothing waits for a group to fill: a send arriving at an idle
    # service is written at once; under load the sends that arrive while a group is being
    # written form the next one. That turns one commit (and a dozen round trips) per send
    # into one per group, which is what lets ingest pass the database's commits-per-second
    # ceiling. Each send still gets its own outcome: a planning error fails that send only,
    # and a group the database refuses is retried one send at a time, so an error always
    # belongs to the send that caused it.

    async def _submit(self, job: _Job) -> Written | Replay:
        self._queue.append(job)
        if self._writers < GROUP_WRITERS:
            self._writers += 1
            task = asyncio.create_task(self._drain(), name="clarion-send-writer")
            self._writer_tasks.add(task)
            task.add_done_callback(self._writer_tasks.discard)
        # Shielded: the send is written (or fails) as a whole even if this caller is
        # cancelled; a retry with the same Idempotency-Key then replays its outcome.
        return await asyncio.shield(job.future)

    async def _drain(self) -> None:
        try:
            while self._queue:
                group = [self._queue.popleft()]
                size = len(group[0].user_ids)
                while self._queue and size + len(self._queue[0].user_ids) <= GROUP_RECIPIENTS:
                    job = self._queue.popleft()
                    group.append(job)
                    size += len(job.user_ids)
                try:
                    await self._write_group(group)
                except Exception as exc:  # a bug; never leave a caller waiting
                    log.exception("group commit failed")
                    for job in group:
                        await self._fail(job, exc)
                except asyncio.CancelledError as exc:
                    for job in [*group, *self._queue]:
                        await self._fail(job, exc)
                    self._queue.clear()
                    raise
        finally:
            self._writers -= 1

    async def _write_group(self, group: list[_Job]) -> None:
        now = utcnow()
        try:
            known = await self.planner.recipients(u for job in group for u in job.user_ids)
        except Exception as exc:
            for job in group:
                await self._fail(job, exc)
            return
        planned = await self._plan_group(group, known, now)
        if not planned:
            return
        done: list[tuple[_Job, Written | Replay | ClarionError]] = []
        try:
            done = await self._commit_planned(planned, known, now)
        except Exception as exc:
            if len(planned) == 1:
                await self._fail(planned[0][0], exc)
                return
            for one in planned:
                try:
                    done += await self._commit_planned([one], known, now)
                except Exception as exc_one:
                    await self._fail(one[0], exc_one)
        merged = Written()
        for job, outcome in done:
            if isinstance(outcome, ClarionError):
                await self._fail(job, outcome)
                continue
            if isinstance(outcome, Written):
                merged.created.extend(outcome.created)
            if not job.future.done():
                job.future.set_result(outcome)  # committed: the 202 need not wait
        await self.notify(merged)

    async def _plan_group(
        self, group: Sequence[_Job], known: Recipients, now: datetime
    ) -> list[tuple[_Job, _Planned]]:
        """Split and plan each send of a group (a send that fails to plan fails alone)."""
        try:
            splits = await self._splits(group)
        except Exception as exc:
            for job in group:
                await self._fail(job, exc)
            return []
        planned: list[tuple[_Job, _Planned]] = []
        for job, split in zip(group, splits, strict=True):
            try:
                planned.append((job, await self._plan(job, split, known, now)))
            except Exception as exc:
                await self._fail(job, exc)
        return planned

    async def _commit_planned(
        self, planned: list[tuple[_Job, _Planned]], known: Recipients, now: datetime
    ) -> list[tuple[_Job, Written | Replay | ClarionError]]:
        """:meth:`_commit`, and when users turn out to have been recorded in an experiment
        with other variants than the sends were split with (nothing was written), the
        sends concerned split and planned again with the recorded variants."""
        for _ in range(REPLANS):
            try:
                outcomes = await self._commit(planned, now)
                return list(zip([job for job, _ in planned], outcomes, strict=True))
            except AssignmentsMoved as moved:
                assert self.experiments is not None
                self.experiments.learn(moved.found)
                again = [job for job, p in planned if _moved(p.split, moved.found)]
                replanned = {id(j): p for j, p in await self._plan_group(again, known, now)}
                redo = {id(job) for job in again}
                planned = [
                    (job, replanned.get(id(job), p))
                    for job, p in planned
                    if id(job) not in redo or id(job) in replanned
                ]
                if not planned:
                    return []
        raise StorageError("experiment assignments kept changing; try again")

    async def _splits(self, group: Sequence[_Job]) -> list[Split]:
        """Each send's recipients by variant of the live experiment on its type, from
        what this process knows (no read: services/experiments.py)."""
        if self.experiments is None:
            return [Split([Group(job.cmd, job.user_ids)]) for job in group]
        return await self.experiments.split_many([(job.cmd, job.user_ids) for job in group])

    async def _plan(self, job: _Job, split: Split, known: Recipients, now: datetime) -> _Planned:
        """Plan a send's recipients, each variant's as that variant changes the send."""
        parts = []
        for g in split.groups:
            if g.cmd is job.cmd:
                content = job.content
            elif g.content_patch is not None:  # the variant's title or message, checked once
                content = {**job.content, **g.content_patch}
            else:
                content = self.content_of(g.cmd)
            plans = await self.planner.plan_for(
                known,
                g.cmd,
                g.user_ids,
                content,
                now,
                experiment=g.experiment,
                delay_seconds=g.delay_seconds,
            )
            parts.append((g.cmd, plans))
        return _Planned(parts, split)

    async def _commit(
        self, planned: Sequence[tuple[_Job, _Planned]], now: datetime
    ) -> list[Written | Replay | ClarionError]:
        """Write a group in one transaction, its Idempotency-Keys claimed and completed in
        it: a crash before the commit leaves neither the send nor its key behind. A send
        whose key another send holds (committed first, or earlier in this group) writes
        nothing and answers with that send's response."""
        SEND_GROUP_SIZE.observe(len(planned))
        async with self._db.begin() as conn:
            owners = await self._claim_keys(conn, [job for job, _ in planned], now)
            writing = [(job, p) for job, p in planned if owners[id(job)]]
            parts = [part for _, p in writing for part in p.parts]
            outs = iter(await self.write_many(conn, parts, now))
            written: dict[int, Written] = {}
            for job, p in writing:
                # One send's variants were written as separate parts: one answer.
                out = Written(accepted=len(job.user_ids))
                for _ in p.parts:
                    part = next(outs)
                    out.ids += part.ids
                    out.batched += part.batched
                    out.created += part.created
                written[id(job)] = out
            for job, _ in writing:
                if job.idempotency is not None:
                    req = job.idempotency
                    body = written[id(job)].body()
                    await idem_store.complete(conn, req.api_key_id, req.key, 202, body)
            results: list[Written | Replay | ClarionError] = []
            for job, _ in planned:
                if owners[id(job)]:
                    results.append(written[id(job)])
                    continue
                assert job.idempotency is not None
                try:
                    results.append(await self._idem.answer_in(conn, job.idempotency, now))
                except ClarionError as exc:  # reused with another body: this send's 4xx
                    results.append(exc)
            recorded = None
            if self.experiments is not None:
                # First assignments last: the statement also adds to the arms' counters,
                # rows every send to the experiment updates, locked from here to the commit.
                recorded = await self.experiments.record_many(
                    conn, [(p.split, job.cmd) for job, p in writing], now
                )
        if recorded and self.experiments is not None:  # committed: kept, never read again
            self.experiments.learn(recorded)
        return results

    async def _claim_keys(
        self, conn: AsyncConnection, jobs: Sequence[_Job], now: datetime
    ) -> dict[int, bool]:
        """Claim each job's key in this transaction: ``id(job)`` -> owns it. Keys are
        claimed in one order (API key, key) by every writer on every node, so two groups
        that share keys wait for each other instead of deadlocking."""
        owners = {id(job): True for job in jobs}
        keyed = sorted(
            (job for job in jobs if job.idempotency is not None),
            key=lambda j: (j.idempotency.api_key_id, j.idempotency.key),  # type: ignore[union-attr]
        )
        for job in keyed:
            assert job.idempotency is not None
            owners[id(job)] = await self._idem.claim_in(conn, job.idempotency, now)
        return owners

    async def _fail(self, job: _Job, exc: BaseException) -> None:
        # Nothing to release: the key was claimed in the transaction that failed.
        if job.future.done():
            return
        if isinstance(exc, asyncio.CancelledError):
            exc = StorageError("the service is shutting down")
        job.future.set_exception(exc)
        # The caller may be gone (cancelled): mark the exception retrieved either way.
        job.future.exception()

    async def close(self) -> None:
        """Let queued sends finish (the server stops taking requests first)."""
        if self._writer_tasks:
            await asyncio.gather(*self._writer_tasks, return_exceptions=True)

    async def notify(self, written: Written) -> None:
        """After commit: count, and tell the listeners (live inboxes, worker wake-ups)."""
        for item in written.created:
            NOTIFICATIONS_ACCEPTED.labels(item["type"]).inc()
        if not written.created:
            return
        for listener in self.listeners:
            try:
                await listener.notifications_created(written.created)
            except Exception:  # hints only: clients resume from the database
                log.exception("listener failed after commit")

    async def _schedule(
        self,
        cmd: SendCommand,
        user_ids: list[str],
        idempotency: IdempotencyRequest | None,
        now: datetime,
    ) -> dict[str, Any] | Replay:
        assert cmd.scheduled_for is not None
        command = cmd.to_json()
        rows = [
            {
                "id": str(uuid.uuid4()),
                "user_id": uid,
                "due_at": as_utc(cmd.scheduled_for),
                "cancellation_key": cmd.cancellation_key,
                "status": "scheduled",
                "command": command,
                "created_at": now,
                "updated_at": now,
            }
            for uid in user_ids
        ]
        body = {"ids": [], "accepted": len(rows), "scheduled": [r["id"] for r in rows]}
        async with self._db.begin() as conn:
            if idempotency is not None and not await self._idem.claim_in(conn, idempotency, now):
                return await self._idem.answer_in(conn, idempotency, now)
            await scheduled_store.insert(conn, rows)
            dims = send_rows.command_dimensions(cmd)
            await event_store.append(
                conn,
                [
                    event_row(
                        EventType.HELD,
                        now,
                        user_id=str(r["user_id"]),
                        dims=dims,
                        reason="scheduled",
                        data={"scheduled_send_id": r["id"]},
                    )
                    for r in rows
                ],
            )
            if idempotency is not None:
                await idem_store.complete(conn, idempotency.api_key_id, idempotency.key, 202, body)
        return body

    async def write(
        self,
        conn: AsyncConnection,
        cmd: SendCommand,
        plans: Sequence[RecipientPlan],
        now: datetime,
    ) -> Written:
        """Write the planned recipients inside the caller's transaction: held ones into
        their open batch, the others as notification + delivery rows + events. Listeners
        are NOT told here; the caller calls :meth:`notify` after its commit."""
        return (await self.write_many(conn, [(cmd, plans)], now))[0]

    async def write_many(
        self,
        conn: AsyncConnection,
        jobs: Sequence[tuple[SendCommand, Sequence[RecipientPlan]]],
        now: datetime,
    ) -> list[Written]:
        """:meth:`write` for several sends at once (send_rows.write_many)."""
        return await send_rows.write_many(conn, jobs, now)


def _moved(split: Split, found: Mapping[str, Mapping[str, str]]) -> bool:
    """Whether ``split`` assumed an assignment for one of the users ``found`` recorded."""
    users = found.get(split.experiment_id or "", {})
    return any(u in users for u in split.chosen)


def check_schedule(when: datetime, now: datetime) -> datetime:
    """A ``scheduled_for`` must be timezone-aware, not in the past beyond a small skew,
    and at most a year ahead."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValidationFailed(
            "scheduled_for must include a timezone",
            [{"field": "scheduled_for", "problem": "naive datetime; add an offset or Z"}],
        )
    if when < now - SCHEDULE_SKEW:
        raise ValidationFailed(
            "scheduled_for is in the past",
            [{"field": "scheduled_for", "problem": "in the past"}],
        )
    if when > now + SCHEDULE_HORIZON:
        raise ValidationFailed(
            "scheduled_for is too far ahead",
            [{"field": "scheduled_for", "problem": "at most one year ahead"}],
        )
    return when
