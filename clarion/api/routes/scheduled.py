"""``/api/v1/notifications/scheduled``: sends with a future ``scheduled_for`` — list,
reschedule, cancel (one, or all sharing a ``cancellation_key``). See docs/scheduling.md."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import AwareDatetime, BaseModel

from clarion.api.deps import PrincipalDep, ServerDep, ServicesDep
from clarion.api.responses import Json
from clarion.api.routes import ERROR_RESPONSES, paged
from clarion.api.schemas import Strict, UserId
from clarion.domain import cursors
from clarion.domain.types import ScheduledStatus

router = APIRouter(
    prefix="/api/v1/notifications/scheduled", tags=["scheduling"], responses=ERROR_RESPONSES
)

SendId = Annotated[str, Path(min_length=1, max_length=36, pattern=r"^[0-9a-f\-]+$")]


class ScheduledOut(BaseModel):
    id: str
    user_id: str
    scheduled_for: str
    status: Literal["scheduled", "sent", "cancelled", "failed"]
    cancellation_key: str | None
    type: str | None
    title: str | None
    priority: str | None
    channels: list[str] | None
    notification_id: int | None
    error: str | None
    created_at: str


class ScheduledPage(BaseModel):
    items: list[ScheduledOut]
    next_cursor: str | None


class Reschedule(Strict):
    scheduled_for: AwareDatetime


class Cancelled(BaseModel):
    cancelled: int


@router.get("", response_model=ScheduledPage)
async def list_scheduled(
    services: ServicesDep,
    principal: PrincipalDep,
    user_id: Annotated[UserId | None, Query()] = None,
    status: Literal["scheduled", "sent", "cancelled", "failed"] = "scheduled",
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=cursors.MAX_CURSOR)] = None,
) -> Json:
    """Scheduled sends (pending ones by default); a user token sees its own only. Pass
    ``next_cursor`` back as ``cursor`` for more."""
    after = cursors.decode("s", cursor) if cursor else None
    page = await services.scheduling.list(
        principal, user_id, status=ScheduledStatus(status), limit=limit, cursor=after
    )
    return Json(paged(page, "s"))


@router.delete("", response_model=Cancelled)
async def cancel_by_key(
    services: ServicesDep,
    _server: ServerDep,
    cancellation_key: Annotated[str, Query(min_length=1, max_length=255)],
) -> Json:
    """Cancel every pending scheduled send with this ``cancellation_key``."""
    return Json({"cancelled": await services.scheduling.cancel_by_key(cancellation_key)})


@router.get("/{send_id}", response_model=ScheduledOut)
async def get_scheduled(send_id: SendId, services: ServicesDep, _server: ServerDep) -> Json:
    return Json(await services.scheduling.get(send_id))


@router.patch("/{send_id}", response_model=ScheduledOut)
async def reschedule(
    send_id: SendId, body: Reschedule, services: ServicesDep, _server: ServerDep
) -> Json:
    """Move a pending send (``409`` once it was sent or cancelled)."""
    return Json(await services.scheduling.reschedule(send_id, body.scheduled_for))


@router.delete("/{send_id}", status_code=204, response_class=Response)
async def cancel(send_id: SendId, services: ServicesDep, _server: ServerDep) -> Response:
    """Cancel a pending send; it never goes out (``409`` if it already went out)."""
    await services.scheduling.cancel(send_id)
    return Response(status_code=204)
