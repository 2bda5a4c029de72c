"""``GET /api/v1/notifications/system/status``: is Clarion whole, or degraded, and why."""

from __future__ import annotations

from fastapi import APIRouter

from clarion.api.deps import ServerDep, ServicesDep
from clarion.api.responses import Json
from clarion.api.routes import ERROR_RESPONSES
from clarion.api.schemas import SystemStatus

router = APIRouter(
    prefix="/api/v1/notifications/system", tags=["system"], responses=ERROR_RESPONSES
)


@router.get("/status", response_model=SystemStatus)
async def system_status(services: ServicesDep, _server: ServerDep) -> Json:
    """``ok``, ``degraded`` (Redis or a broker transport is down: Clarion keeps working on
    its fallbacks) or ``down`` (the database is unreachable), with the reasons."""
    return Json(await services.system_status())
