"""``POST /api/v1/notifications/{id}/actions/{action_id}``: a click on an interactive
notification's button (the owner's user token or an API key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from clarion.api.deps import PrincipalDep, ServicesDep
from clarion.api.responses import Json
from clarion.api.routes import ERROR_RESPONSES
from clarion.api.schemas import MAX_ID, Notification

router = APIRouter(
    prefix="/api/v1/notifications", tags=["notifications"], responses=ERROR_RESPONSES
)

NotificationId = Annotated[int, Path(ge=1, le=MAX_ID)]
ActionId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]


@router.post("/{notification_id:int}/actions/{action_id}", response_model=Notification)
async def click_action(
    notification_id: NotificationId,
    action_id: ActionId,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Json:
    """Record a click on the action (a ``clicked`` event), mark the notification read and
    notify ``action_webhook_url`` if configured. Unknown action id: 404."""
    return Json(await services.actions.click(principal, notification_id, action_id))
