"""``/api/v1/notifications``: send, list, count, and change the inbox."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Path, Query, Response

from clarion.api.deps import PrincipalDep, ServerDep, ServicesDep
from clarion.api.responses import Json
from clarion.api.routes import ERROR_RESPONSES
from clarion.api.schemas import (
    MAX_ID,
    Notification,
    NotificationPage,
    SendRequest,
    SendResponse,
    TypeName,
    UnreadCount,
    UserId,
)
from clarion.domain.send_command import SendCommand
from clarion.services.auth import Principal
from clarion.services.container import Services
from clarion.services.idempotency import IdempotencyRequest

router = APIRouter(
    prefix="/api/v1/notifications", tags=["notifications"], responses=ERROR_RESPONSES
)

NotificationId = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.post("", status_code=202, response_model=SendResponse)
async def send_notification(
    body: SendRequest,
    services: ServicesDep,
    principal: ServerDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> Json:
    """Accept a notification for one user (``user_id``) or many (``user_ids``).

    Written at once (``ids``), held in a batch (``batched``: batch ids, docs/batching.md),
    or stored for later when ``scheduled_for`` is given (``scheduled``: ids,
    docs/scheduling.md). ``accepted`` counts recipients in every case."""
    return await accept(services, principal, body, idempotency_key)


async def accept(
    services: Services, principal: Principal, body: SendRequest, idempotency_key: str | None
) -> Json:
    """A validated send from a server key, accepted: this route's work, and api/fastpath's
    for the plainly valid sends it answers without FastAPI."""
    idem = None
    if idempotency_key is not None:
        assert principal.api_key_id is not None
        idem = IdempotencyRequest.build(
            principal.api_key_id, idempotency_key, body.model_dump(mode="json")
        )
    cmd = SendCommand(
        user_ids=tuple(body.user_ids or [body.user_id or ""]),
        type=body.type,
        title=body.title,
        message=body.message,
        template=body.template,
        priority=body.priority,
        channels=tuple(body.channels),
        media=body.media,
        actions=body.actions,
        content=body.content,
        data=body.data,
        group_key=body.group_key,
        template_key=body.template_key,
        scheduled_for=body.scheduled_for,
        cancellation_key=body.cancellation_key,
    )
    accepted = await services.sending.send(cmd, idem)
    headers = {"Idempotent-Replayed": "true"} if accepted.replayed else None
    return Json(accepted.body, status_code=accepted.status_code, headers=headers)


@router.get("", response_model=NotificationPage)
async def list_notifications(
    services: ServicesDep,
    principal: PrincipalDep,
    user_id: Annotated[UserId | None, Query()] = None,
    status: Literal["unread", "read", "all"] = "all",
    archived: Literal["false", "true", "all"] = "false",
    type: Annotated[TypeName | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> Json:
    """A user's inbox, newest first; pass ``next_cursor`` back as ``cursor`` for more."""
    uid = principal.scope_user(user_id)
    page = await services.inbox.page(
        uid, status=status, archived=archived, type_=type, limit=limit, cursor=cursor
    )
    return Json(page)


@router.get("/unread-count", response_model=UnreadCount)
async def unread_count(
    services: ServicesDep,
    principal: PrincipalDep,
    user_id: Annotated[UserId | None, Query()] = None,
) -> Json:
    """Unread and unseen counts: one primary-key read of the user's row (kept exact in
    every change's transaction; a cache in Redis would cost as much as the read)."""
    counts = await services.inbox.counts(principal.scope_user(user_id))
    return Json(counts.to_json())


@router.post("/read-all", response_model=UnreadCount)
async def read_all(
    services: ServicesDep,
    principal: PrincipalDep,
    user_id: Annotated[UserId | None, Query()] = None,
) -> Json:
    """Mark every notification of the user read (constant time, whatever the inbox size)."""
    counts = await services.inbox.read_all(principal.scope_user(user_id))
    return Json(counts.to_json())


@router.get("/{notification_id:int}", response_model=Notification)
async def get_notification(
    notification_id: NotificationId, services: ServicesDep, principal: PrincipalDep
) -> Json:
    return Json(await services.inbox.get(principal, notification_id))


def _action_route(action: Literal["read", "unread", "seen", "archive", "unarchive"]) -> None:
    async def change(
        notification_id: NotificationId, services: ServicesDep, principal: PrincipalDep
    ) -> Json:
        return Json(await services.inbox.apply(principal, notification_id, action))

    change.__name__ = f"mark_{action}"
    change.__doc__ = f"Mark the notification {action} (repeating it changes nothing)."
    router.add_api_route(
        f"/{{notification_id:int}}/{action}",
        change,
        methods=["POST"],
        response_model=Notification,
        name=f"mark_{action}",
    )


for _action in ("read", "unread", "seen", "archive", "unarchive"):
    _action_route(_action)


@router.delete("/{notification_id:int}", status_code=204, response_class=Response)
async def delete_notification(
    notification_id: NotificationId, services: ServicesDep, principal: PrincipalDep
) -> Response:
    await services.inbox.delete(principal, notification_id)
    return Response(status_code=204)
