"""The rows of accepted sends, written inside a caller's transaction: held recipients go
into their open batch, the others become notification, delivery and event rows. The group
writer of :mod:`clarion.services.sending`, the batch flusher and the scheduler all write
through :func:`write_many`, which is what makes a released batch or a due schedule go
out exactly once (their own row changes commit with these)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.domain.batching import BatchRule, batch_key, flush_at
from clarion.domain.events import dimensions, event_row
from clarion.domain.send_command import SendCommand
from clarion.domain.types import (
    ChannelName,
    DeliveryStatus,
    EventType,
    Priority,
    SuppressionReason,
)
from clarion.services.clock import as_utc
from clarion.services.inbox import notification_json
from clarion.services.planner import RecipientPlan
from clarion.store import batches as batch_store
from clarion.store import channel_digests as digest_store
from clarion.store import deliveries as delivery_store
from clarion.store import events as event_store
from clarion.store import inbox as inbox_store
from clarion.store import users as user_store
from clarion.store.users import InboxMarks

_FRESH = InboxMarks(0, 0, 0, 0, None, None)

#: The reason of a ``held`` event for a delivery waiting in the user's channel digest.
CHANNEL_DIGEST = "channel_digest"


@dataclass
class Written:
    """What :func:`write_many` did for one send: notification ids, batch ids, and the
    notifications to tell listeners about once the transaction commits."""

    ids: list[int] = field(default_factory=list)
    batched: list[str] = field(default_factory=list)
    created: list[dict[str, Any]] = field(default_factory=list)
    accepted: int = 0

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ids": self.ids, "accepted": self.accepted}
        if self.batched:
            out["batched"] = self.batched
        return out


def actor_of(data: Mapping[str, Any]) -> dict[str, str] | None:
    """The actor of a notification, from ``data.actor`` (a name, or ``{"id", "name"}``)
    or ``data.actor_id``/``data.actor_name``; folding lists distinct actors."""
    actor = data.get("actor")
    if isinstance(actor, Mapping):
        out = {k: str(actor[k]) for k in ("id", "name") if actor.get(k) not in (None, "")}
        return out or None
    if isinstance(actor, str | int) and str(actor):
        return {"name": str(actor)}
    ident, name = data.get("actor_id"), data.get("actor_name")
    out = {}
    if ident not in (None, ""):
        out["id"] = str(ident)
    if name not in (None, ""):
        out["name"] = str(name)
    return out or None


async def write_many(
    conn: AsyncConnection,
    jobs: Sequence[tuple[SendCommand, Sequence[RecipientPlan]]],
    now: datetime,
) -> list[Written]:
    """Write several sends at once, one statement per table for all of
    them (a group commit, a page of due batches): a statement's round trip and its
    SQLAlchemy overhead are paid once per group instead of once per send."""
    outs = [Written(accepted=len(plans)) for _, plans in jobs]
    deltas: dict[str, tuple[int, int]] = {}
    for _, plans in jobs:
        for p in plans:
            unread, unseen = deltas.get(p.user_id, (0, 0))
            step = 1 if p.hold is None and p.inbox else 0
            deltas[p.user_id] = (unread + step, unseen + step)
    if not deltas:
        return outs
    # Users are created and counted in one statement, BEFORE the notification ids are
    # drawn: the count takes the user's row lock, so a concurrent mark-all-read cannot
    # move the watermark past an id not yet committed.
    await user_store.ensure_counted(conn, deltas, now)
    sent: list[tuple[SendCommand, RecipientPlan, Written]] = []
    for (cmd, plans), out in zip(jobs, outs, strict=True):
        for p in plans:
            if p.hold is not None:
                out.batched.append(await _hold(conn, cmd, p, p.hold, now))
            else:
                sent.append((cmd, p, out))
    if sent:
        await _write_rows(conn, sent, now)
    return outs


async def _hold(
    conn: AsyncConnection,
    cmd: SendCommand,
    p: RecipientPlan,
    rule: BatchRule,
    now: datetime,
) -> str:
    group = cmd.group_key or ""
    batch = await batch_store.open_or_create(
        conn,
        {
            "key": batch_key(p.user_id, cmd.type, group),
            "user_id": p.user_id,
            "type": cmd.type,
            "group_key": group,
            "rule": rule.to_json(),
            "locale": p.locale,
            "opened_at": now,
            "flush_at": flush_at(rule, now, p.timezone),
        },
    )
    opened_under = BatchRule.from_json(batch.rule)
    due = batch.flush_at
    if opened_under.count is not None and batch.item_count + 1 >= opened_under.count:
        due = now
    actor = actor_of(cmd.data)
    await batch_store.add_item(
        conn,
        batch.id,
        {
            "title": p.title,
            "message": p.message,
            "data": dict(cmd.data),
            "actor": actor,
            "command": {**cmd.to_json(), "title": p.title, "message": p.message},
            "created_at": now,
        },
        flush_at=due,
    )
    await event_store.append(
        conn,
        [
            event_row(
                EventType.HELD,
                now,
                user_id=p.user_id,
                dims=command_dimensions(cmd),
                reason=SuppressionReason.BATCHED,
                data={"batch_id": batch.id},
            )
        ],
    )
    return batch.id


def command_dimensions(cmd: SendCommand) -> dict[str, Any]:
    """The event dimensions of a send's notifications, before they have rows."""
    return dimensions(
        {
            "type": cmd.type,
            "template": cmd.template,
            "template_key": cmd.template_key,
            "priority": cmd.priority,
            "data": cmd.data,
        }
    )


async def _write_rows(
    conn: AsyncConnection,
    sent: Sequence[tuple[SendCommand, RecipientPlan, Written]],
    now: datetime,
) -> None:
    # Values shared by every recipient of a send are one object each, so the JSON
    # columns are encoded once per send (see store/bulk.py), not once per row.
    shared: dict[int, tuple[list[str], dict[str, Any], dict[str, Any]]] = {}  # channels, data, dims
    rows = []
    for cmd, p, _ in sent:
        per_cmd = shared.get(id(cmd))
        if per_cmd is None:
            per_cmd = shared[id(cmd)] = (
                [str(c) for c in cmd.channels],
                dict(cmd.data),
                command_dimensions(cmd),
            )
        channels, common_data, _ = per_cmd
        rows.append(
            {
                "user_id": p.user_id,
                "type": cmd.type,
                "title": p.title,
                "message": p.message,
                "template": str(cmd.template),
                "priority": str(cmd.priority),
                "channels": channels,
                "content": p.content,
                "data": common_data,
                "group_key": cmd.group_key,
                "template_key": cmd.template_key,
                "experiment_id": None if p.experiment is None else p.experiment[0],
                "variant": None if p.experiment is None else p.experiment[1],
                "created_at": now,
                "forced_unread": False,
                "inbox": p.inbox,
            }
        )
    ids = await inbox_store.insert(conn, rows)  # users counted and locked in write_many()
    deliveries = []
    events: list[dict[str, Any]] = []
    for nid, (cmd, p, _) in zip(ids, sent, strict=True):
        dims = shared[id(cmd)][2]
        if p.experiment is not None:
            dims = {**dims, "experiment": p.experiment[0], "variant": p.experiment[1]}
        events.append(
            # The channel says whether the inbox got its copy (delivered on acceptance).
            event_row(
                EventType.ACCEPTED,
                now,
                user_id=p.user_id,
                notification_id=nid,
                dims=dims,
                channel=ChannelName.IN_APP if p.inbox else None,
            )
        )
        if p.suppressed_in_app:
            events.append(
                event_row(
                    EventType.SUPPRESSED,
                    now,
                    user_id=p.user_id,
                    notification_id=nid,
                    dims=dims,
                    channel=ChannelName.IN_APP,
                    reason=p.suppressed_in_app,
                )
            )
        rank = Priority(cmd.priority).rank
        for d in p.deliveries:
            digest_id = None
            when = d.next_attempt_at
            if d.digest:  # held for the (user, channel) digest: joins the open one
                digest = await digest_store.hold(conn, p.user_id, d.channel, when, now)
                digest_id, when = digest.id, digest.due_at
            deliveries.append(
                {
                    "id": str(uuid.uuid4()),
                    "notification_id": nid,
                    "user_id": p.user_id,
                    "channel": d.channel,
                    "status": d.status,
                    "reason": d.reason,
                    "priority": rank,
                    "attempts": 0,
                    "next_attempt_at": when,
                    "digest_id": digest_id,
                    "variant": None if p.experiment is None else p.experiment[1],
                    "created_at": now,
                    "updated_at": now,
                }
            )
            if d.reason is not None:
                # Deferred (quiet hours) or waiting in a channel digest: held, and said
                # when; otherwise suppressed for good.
                held = d.status == DeliveryStatus.SCHEDULED
                data: dict[str, Any] | None = None
                if held:
                    data = {"deferred_until": as_utc(when).isoformat()}
                    if digest_id is not None:
                        data["channel_digest_id"] = digest_id
                events.append(
                    event_row(
                        EventType.HELD if held else EventType.SUPPRESSED,
                        now,
                        user_id=p.user_id,
                        notification_id=nid,
                        dims=dims,
                        channel=d.channel,
                        reason=CHANNEL_DIGEST if digest_id is not None else d.reason,
                        data=data,
                    )
                )
    await delivery_store.insert(conn, deliveries)
    await event_store.append(conn, events)
    for nid, row, (_, _, out) in zip(ids, rows, sent, strict=True):
        out.ids.append(nid)
        out.created.append(
            notification_json(
                {**row, "id": nid, "seen_at": None, "read_at": None, "archived_at": None},
                _FRESH,
            )
        )
