"""``/api/v1/notifications/.../deliveries``: each channel's status and attempts, and
re-queueing a dead or failed delivery."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel

from clarion.api.deps import PrincipalDep, ServerDep, ServicesDep
from clarion.api.responses import Json
from clarion.api.routes import ERROR_RESPONSES
from clarion.api.schemas import MAX_ID

router = APIRouter(prefix="/api/v1/notifications", tags=["deliveries"], responses=ERROR_RESPONSES)

DeliveryId = Annotated[
    str,
    Path(
        min_length=36,
        max_length=36,
        pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
    ),
]


class Attempt(BaseModel):
    attempt: int
    at: str
    outcome: Literal["delivered", "transient", "permanent", "no_contact"]
    latency_ms: int
    provider: str | None
    error: str | None


class Delivery(BaseModel):
    id: str
    channel: str
    target: str | None
    status: Literal[
        "scheduled", "pending", "sending", "delivered", "failed", "dead", "cancelled", "suppressed"
    ]
    reason: str | None
    attempt_count: int
    next_attempt_at: str | None
    last_error: str | None
    created_at: str
    updated_at: str
    attempts: list[Attempt]


class NotificationDeliveries(BaseModel):
    notification_id: int
    deliveries: list[Delivery]


@router.get("/{notification_id:int}/deliveries", response_model=NotificationDeliveries)
async def list_deliveries(
    notification_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    services: ServicesDep,
    principal: PrincipalDep,
) -> Json:
    """Each channel's delivery: status, and every attempt with outcome, latency and error.
    A user token sees only its own notifications."""
    return Json(await services.deliveries.for_notification(principal, notification_id))


@router.post("/deliveries/{delivery_id}/retry", response_model=Delivery)
async def retry_delivery(
    delivery_id: DeliveryId, services: ServicesDep, _server: ServerDep
) -> Json:
    """Re-queue a ``dead`` or ``failed`` delivery now, with a fresh attempt budget
    (409 for any other status)."""
    return Json(await services.deliveries.retry(delivery_id))
