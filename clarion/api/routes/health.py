"""Liveness, readiness and Prometheus metrics (no authentication: for orchestrators)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from clarion.api.deps import ServicesDep
from clarion.api.errors import error_response
from clarion.api.responses import Json
from clarion.api.routes import ERROR_RESPONSES
from clarion.api.schemas import Health
from clarion.errors import StorageError

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Json:
    """The process is up."""
    return Json({"status": "ok", "checks": {}})


@router.get("/readyz", response_model=Health, responses={503: ERROR_RESPONSES[503]})
async def readyz(services: ServicesDep) -> Json:
    """Ready to serve: the database answers (asked afresh on every call, so it turns
    ready again as soon as the database is back)."""
    if await services.db.ping():
        return Json({"status": "ok", "checks": {"database": "ok"}})
    return error_response(
        503,
        "storage_unavailable",
        "the database is unreachable",
        {"database": "unreachable"},
        headers={"Retry-After": str(StorageError.retry_after)},
    )


@router.get("/metrics", response_class=Response)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
