"""Delivery use cases: what workers claim and record, what the API shows and re-queues.

The worker (``delivery/worker.py``) asks :meth:`DeliveryService.claim` for jobs and hands
results back to :meth:`DeliveryService.record`; everything that touches the database on
that path happens here, in as few transactions as possible (one per claimed batch, one per
recorded batch), because the outbox is the throughput bottleneck of the whole pipeline.

Webhook fan-out happens at claim time: ``sending.py`` writes one ``webhook`` row per
notification with no target; the first claim expands it into one row per matching
endpoint (the claimed row takes the first endpoint, siblings are inserted ``pending``).
Each endpoint then has its own status, retries and ``webhook-id``, and endpoints added or
disabled between send and delivery are honoured.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from clarion.config import Settings
from clarion.domain.deliveries import Delivery, DeliveryAttempt
from clarion.domain.events import (
    OUTSIDE_INBOX,
    dimensions,
    elapsed_ms,
    event_row,
    failure_class,
)
from clarion.domain.jobs import Job, Result
from clarion.domain.notifications import Notification
from clarion.domain.recipients import WebhookEndpoint
from clarion.domain.retry import Outcome, RetryPolicy, policy_for
from clarion.domain.types import ChannelName, DeliveryStatus, EventType
from clarion.errors import Conflict, NotFound
from clarion.services.auth import Principal
from clarion.services.clock import as_utc, utcnow
from clarion.services.unsubscribe import UnsubscribeSigner
from clarion.store import attempts as attempt_store
from clarion.store import direct_reads, outbox
from clarion.store import events as event_store
from clarion.store import opt_outs as opt_out_store
from clarion.store import push_subscriptions as subscription_store
from clarion.store import users as user_store
from clarion.store import webhook_endpoints as endpoint_store
from clarion.store.db import Database
from clarion.store.deliveries import for_notification

log = logging.getLogger("clarion.deliveries")

#: Channels where the provider's acceptance is the recipient's receipt (event ``delivered``);
#: elsewhere acceptance means "handed to the relay" (event ``sent``).
_RECEIPT_CHANNELS = frozenset({ChannelName.WEBHOOK})


def _iso(value: datetime | None) -> str | None:
    return None if value is None else as_utc(value).isoformat()


class DeliveryService:
    def __init__(self, db: Database, settings: Settings, signer: UnsubscribeSigner) -> None:
        self._db = db
        self._settings = settings
        self._signer = signer
        self._rng = random.Random()
        #: Called after a re-queue so an embedded worker wakes at once.
        self.wake_callbacks: list[Callable[[], None]] = []

    # --- policy -----------------------------------------------------------------------------
    def policy(self, channel: str) -> RetryPolicy:
        policy = policy_for(channel, self._settings.max_attempts)
        base = self._settings.retry_base_delay_seconds
        if base is not None:
            policy = RetryPolicy(
                max_attempts=policy.max_attempts,
                base_delay=base,
                max_delay=max(base, min(policy.max_delay, self._settings.retry_max_delay_seconds)),
                jitter=policy.jitter,
                max_retry_after=policy.max_retry_after,
            )
        return policy

    # --- worker side ------------------------------------------------------------------------
    async def claim(self, worker: str, limit: int, lease_seconds: float) -> list[Job]:
        """Lease up to ``limit`` due deliveries and load what sending them needs.

        On PostgreSQL this runs in autocommit: the claim is one statement (atomic on its
        own), the rest are reads, and a webhook fan-out that adds rows writes them in a
        transaction of its own. The BEGIN/COMMIT round trips around every claim were a
        visible share of the worker's time. A crash between the claim and the result
        leaves a leased row without a target when its notification had one matching
        endpoint (that target is written with the result, see :meth:`_expand_webhooks`):
        its lease runs out and the next claim expands it again, under the same delivery
        id. SQLite keeps one transaction (its write lock is taken at BEGIN)."""
        now = utcnow()
        lease_until = now + timedelta(seconds=lease_seconds)
        sqlite = self._db.is_sqlite
        claimed = None
        if not sqlite:
            async with direct_reads.driver(self._db) as driver:
                if driver is not None:
                    claimed = await outbox.claim_direct(
                        self._db,
                        driver,
                        worker=worker,
                        now=now,
                        lease_until=lease_until,
                        limit=limit,
                    )
            if claimed is not None and not claimed[0]:
                return []
        async with self._db.begin() if sqlite else self._db.connect() as conn:
            if claimed is None:
                rows = await outbox.claim(
                    conn, worker=worker, now=now, lease_until=lease_until, limit=limit
                )
                if not rows:
                    return []
                notes = await outbox.notifications_by_id(conn, [r.notification_id for r in rows])
            else:
                rows, notes = claimed
            siblings, expanded = await self._expand_webhooks(
                conn, rows, notes, now, worker, in_transaction=sqlite
            )
            # Webhooks need no profile (the endpoint is the address): load profiles only
            # for the rows of other channels.
            profiles = await user_store.profiles(
                conn, {r.user_id for r in rows if r.channel != ChannelName.WEBHOOK}
            )
            push_users = [r.user_id for r in rows if r.channel == ChannelName.PUSH]
            subs = await subscription_store.subscriptions_for(conn, push_users)
            endpoints = await endpoint_store.endpoints_by_id(
                conn, [r.target for r in rows if r.channel == ChannelName.WEBHOOK and r.target]
            )
            keys = {
                (r.user_id, notes[r.notification_id].type, r.channel)
                for r in rows
                if r.channel == ChannelName.EMAIL and r.notification_id in notes
            }
            opted = await opt_out_store.opted_out(conn, keys)
        if siblings:
            # The other endpoints' rows are due now: claim them without waiting a poll.
            for wake in self.wake_callbacks:
                wake()
        jobs = []
        for r in rows:
            n = notes.get(r.notification_id)
            unsubscribe = None
            opted_out = False
            if n is not None and r.channel == ChannelName.EMAIL:
                opted_out = (r.user_id, n.type, ChannelName.EMAIL) in opted
                unsubscribe = self.unsubscribe_url(r.user_id, n.type, ChannelName.EMAIL)
            jobs.append(
                Job(
                    delivery=r,
                    notification=n,
                    profile=profiles.get(r.user_id),
                    push_subscriptions=subs.get(r.user_id, ()),
                    endpoint=expanded.get(r.id) or (endpoints.get(r.target) if r.target else None),
                    opted_out=opted_out,
                    unsubscribe_url=unsubscribe,
                )
            )
        return jobs

    async def _expand_webhooks(
        self,
        conn: Any,
        rows: list[Delivery],
        notes: Mapping[int, Notification],
        now: datetime,
        worker: str,
        *,
        in_transaction: bool,
    ) -> tuple[int, dict[str, WebhookEndpoint]]:
        """One row per matching endpoint: the claimed row takes the first, new pending
        rows the rest. Returns how many rows were added and the endpoint each expanded
        row now targets, by delivery id (already read: no second query; the rows are
        left as claimed, ``target`` unset: :attr:`Job.target` answers for them).

        A row with one matching endpoint (the common case) gets its target with its
        result (:meth:`record` writes ``target``), not here: a second update of every
        claimed row was a third of the outbox's writes. Nothing is lost meanwhile: until
        the result, the row is leased with no target, and a row whose worker died is
        expanded again by the next claim. A row with several endpoints gets its target
        here, in the transaction that inserts its siblings: expanded twice, it would
        insert them twice. One endpoint query, at most one target update and one insert
        per claimed batch."""
        fresh = [
            r
            for r in rows
            if r.channel == ChannelName.WEBHOOK and not r.target and r.notification_id in notes
        ]
        if not fresh:
            return 0, {}
        per_user = await endpoint_store.enabled_endpoints_for_users(
            conn, [r.user_id for r in fresh]
        )
        targets: list[tuple[str, str]] = []
        siblings: list[Delivery] = []
        chosen: dict[str, WebhookEndpoint] = {}
        for r in fresh:
            type_ = notes[r.notification_id].type
            matching = [e for e in per_user[r.user_id] if e.matches(type_)]
            if not matching:
                continue  # no target: the channel reports no_contact -> suppressed
            first, rest = matching[0], matching[1:]
            if rest:
                targets.append((r.id, first.id))
            chosen[r.id] = first
            siblings.extend(
                Delivery(
                    id=str(uuid.uuid4()),
                    notification_id=r.notification_id,
                    user_id=r.user_id,
                    channel=ChannelName.WEBHOOK,
                    status=DeliveryStatus.PENDING,
                    priority=r.priority,
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                    updated_at=now,
                    target=e.id,
                )
                for e in rest
            )
        if siblings and not in_transaction:
            # Targets and sibling rows together or not at all: a target set without its
            # siblings would lose the other endpoints' deliveries.
            async with self._db.begin() as tx:
                await outbox.set_targets(tx, worker, targets)
                await outbox.insert_siblings(tx, siblings)
        elif siblings:
            await outbox.set_targets(conn, worker, targets)
            await outbox.insert_siblings(conn, siblings)
        return len(siblings), chosen

    async def renew(self, worker: str, ids: Sequence[str], lease_seconds: float) -> int:
        until = utcnow() + timedelta(seconds=lease_seconds)
        async with self._db.begin() as conn:
            return await outbox.renew(conn, worker=worker, ids=ids, lease_until=until)

    async def release(self, worker: str, ids: Sequence[str]) -> int:
        async with self._db.begin() as conn:
            return await outbox.release(conn, worker=worker, ids=ids, now=utcnow())

    def decide(self, result: Result, now: datetime) -> dict[str, Any]:
        """The new row values for one result (status, reason, next attempt, last error)."""
        delivery = result.job.delivery
        attempts = delivery.attempts
        values: dict[str, Any] = {"updated_at": now, "last_error": result.detail}
        target = result.job.target
        if delivery.channel == ChannelName.WEBHOOK and target is not None:
            # The endpoint chosen at claim, written now when the claim did not (see
            # _expand_webhooks); a retry goes to the same endpoint.
            values["target"] = target
        if result.suppress_reason is not None:
            values.update(status=DeliveryStatus.SUPPRESSED, reason=result.suppress_reason)
            return values
        assert result.outcome is not None
        policy = self.policy(result.job.channel)
        decision = policy.decide(attempts, result.outcome)
        if decision == "done":
            values.update(status=DeliveryStatus.DELIVERED, last_error=None, reason=None)
        elif decision == "dead":
            reason = "permanent" if result.outcome is Outcome.PERMANENT else "max_attempts"
            values.update(status=DeliveryStatus.DEAD, reason=reason)
        else:
            delay = policy.next_delay(attempts, result.retry_after, self._rng)
            values.update(
                status=DeliveryStatus.FAILED,
                next_attempt_at=now + timedelta(seconds=delay),
                reason=None,
            )
        return values

    async def record(self, worker: str, results: Sequence[Result]) -> list[tuple[Result, str]]:
        """Write a batch of results in one transaction; returns each result with the status
        it produced (``lost`` when another worker had taken the delivery over).

        A handful of statements per batch, whatever its size: the status updates grouped
        by identical values (``outbox.finish_many``), one insert of attempts, one of
        events."""
        now = utcnow()
        ordered = sorted(results, key=lambda r: r.job.id)  # one lock order
        decided = [(res, self.decide(res, now)) for res in ordered]
        attempts = [
            {
                "delivery_id": res.job.id,
                "attempt": res.job.delivery.attempts,
                "started_at": res.started_at,
                "outcome": str(res.outcome),
                "latency_ms": res.latency_ms,
                "provider": (res.provider or "")[:40] or None,
                "error": None if res.outcome is Outcome.DELIVERED else res.detail,
                "worker": worker[:100],
            }
            for res, _ in decided
            if res.outcome is not None
        ]
        done: list[tuple[Result, str]] = []
        events: list[dict[str, Any]] = []
        async with self._db.begin() as conn:
            written = await outbox.finish_many(
                conn, worker=worker, items=[(res.job.id, values) for res, values in decided]
            )
            for res, values in decided:
                job = res.job
                if job.id not in written:
                    done.append((res, "lost"))
                    continue
                status = str(values["status"])
                done.append((res, status))
                events.append(self._event(res, status, now))
                if res.gone_subscriptions:
                    await subscription_store.delete_subscriptions_by_endpoint(
                        conn, job.delivery.user_id, res.gone_subscriptions
                    )
                if res.disable_endpoint and job.target:
                    await endpoint_store.disable_endpoint(
                        conn, job.target, res.detail or "410 Gone", now
                    )
            if len(written) < len(decided):
                # A delivery erased (or deleted with its notification) while it was being
                # sent has no row left for its attempt to reference.
                kept = written | await outbox.existing(
                    conn, [res.job.id for res, _ in decided if res.job.id not in written]
                )
                attempts = [a for a in attempts if a["delivery_id"] in kept]
            await attempt_store.add_attempts(conn, attempts)
            await event_store.append(conn, events)
        return done

    def _event(self, res: Result, status: str, now: datetime) -> dict[str, Any]:
        job = res.job
        reason = None
        latency = None
        if status == DeliveryStatus.DELIVERED:
            kind = EventType.DELIVERED if job.channel in _RECEIPT_CHANNELS else EventType.SENT
            note = job.notification
            created = None if note is None else note.created_at
            latency = elapsed_ms(created or job.delivery.created_at, now)
            if note is not None and not note.inbox:
                # The notification's only copies are outside the inbox: this one counts
                # toward "delivered" in the analytics funnel (docs/analytics.md).
                reason = OUTSIDE_INBOX
        elif status == DeliveryStatus.SUPPRESSED:
            kind = EventType.SUPPRESSED
            reason = res.suppress_reason
        else:
            kind = EventType.DEAD if status == DeliveryStatus.DEAD else EventType.FAILED
            reason = failure_class(None if res.outcome is None else str(res.outcome), res.detail)
        data: dict[str, Any] = {
            "delivery_id": job.id,
            "attempt": job.delivery.attempts,
        }
        if res.outcome is not None:
            data["attempt_ms"] = res.latency_ms
        return event_row(
            kind,
            now,
            user_id=job.delivery.user_id,
            notification_id=job.delivery.notification_id,
            dims=dimensions(job.notification),
            channel=job.channel,
            provider=res.provider,
            reason=reason,
            latency_ms=latency,
            data=data,
        )

    async def backlog(self) -> int:
        async with self._db.connect() as conn:
            return await outbox.backlog_due(conn, utcnow())

    # --- API side ---------------------------------------------------------------------------
    async def for_notification(self, principal: Principal, notification_id: int) -> dict[str, Any]:
        async with self._db.connect() as conn:
            notes = await outbox.notifications_by_id(conn, [notification_id])
            note = notes.get(notification_id)
            if note is None:
                raise NotFound("no such notification")
            principal.check_owner(note.user_id)
            rows = await for_notification(conn, notification_id)
            log_rows = await attempt_store.attempts_for(conn, [r.id for r in rows])
        return {
            "notification_id": notification_id,
            "deliveries": [self._delivery_json(r, log_rows.get(r.id, [])) for r in rows],
        }

    @staticmethod
    def _delivery_json(d: Delivery, attempts: Sequence[DeliveryAttempt]) -> dict[str, Any]:
        return {
            "id": d.id,
            "channel": d.channel,
            "target": d.target,
            "status": d.status,
            "reason": d.reason,
            "attempt_count": d.attempts,
            "next_attempt_at": _iso(d.next_attempt_at) if d.waiting else None,
            "last_error": d.last_error,
            "created_at": _iso(d.created_at),
            "updated_at": _iso(d.updated_at),
            "attempts": [
                {
                    "attempt": a.attempt,
                    "at": _iso(a.started_at),
                    "outcome": a.outcome,
                    "latency_ms": a.latency_ms,
                    "provider": a.provider,
                    "error": a.error,
                }
                for a in attempts
            ],
        }

    async def get(self, delivery_id: str) -> dict[str, Any]:
        """One delivery as the retry answers it (the audit log's "before" of a retry)."""
        async with self._db.connect() as conn:
            row = await outbox.get(conn, delivery_id)
        if row is None:
            raise NotFound("no such delivery")
        return self._delivery_json(row, [])

    async def retry(self, delivery_id: str) -> dict[str, Any]:
        """Re-queue a dead or failed delivery now, with a fresh attempt budget."""
        now = utcnow()
        async with self._db.begin() as conn:
            row = await outbox.get(conn, delivery_id)
            if row is None:
                raise NotFound("no such delivery")
            if not await outbox.requeue(conn, delivery_id, now):
                raise Conflict(
                    f"only dead or failed deliveries can be retried; this one is {row.status}",
                    {"status": row.status},
                )
            row = await outbox.get(conn, delivery_id)
            assert row is not None
        for wake in self.wake_callbacks:
            wake()
        return self._delivery_json(row, [])

    # --- one-click unsubscribe ---------------------------------------------------------------
    def unsubscribe_url(self, user_id: str, type_: str, channel: str) -> str:
        base = self._settings.public_url.rstrip("/")
        return f"{base}/api/v1/unsubscribe/{self._signer.sign(user_id, type_, channel)}"

    def describe_unsubscribe(self, token: str) -> dict[str, str]:
        user_id, type_, channel = self._signer.verify(token)
        return {"user_id": user_id, "type": type_, "channel": channel}

    async def unsubscribe(self, token: str) -> dict[str, Any]:
        """Opt the token's user out of that type on that channel (idempotent)."""
        user_id, type_, channel = self._signer.verify(token)
        now = utcnow()
        async with self._db.begin() as conn:
            if await opt_out_store.add_opt_out(conn, user_id, type_, channel, now):
                dims = dimensions({"type": type_})
                unsubscribed = event_row(
                    EventType.UNSUBSCRIBED, now, user_id=user_id, dims=dims, channel=channel
                )
                await event_store.append(conn, [unsubscribed])
        log.info("user %s unsubscribed from %s over %s", user_id, type_, channel)
        return {"unsubscribed": True, "user_id": user_id, "type": type_, "channel": channel}
