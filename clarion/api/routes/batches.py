"""``/api/v1/notifications/batches``: open batches — list, read one with its
items, flush now, drop.

Listing and reading work with an API key (every user, or ``user_id``) or a user's own
token (another user's batch is a 404); flushing and dropping need an API key. See
docs/batching.md."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel

from clarion.api.deps import PrincipalDep, ServerDep, ServicesDep
from clarion.api.responses import Json
from clarion.api.routes import ERROR_RESPONSES, paged
from clarion.api.schemas import UserId
from clarion.domain import cursors

router = APIRouter(
    prefix="/api/v1/notifications/batches", tags=["batching"], responses=ERROR_RESPONSES
)

BatchId = Annotated[str, Path(min_length=1, max_length=36, pattern=r"^[0-9a-f\-]+$")]


class BatchOut(BaseModel):
    id: str
    key: str
    user_id: str
    type: str
    group_key: str | None
    status: str
    rule: dict[str, Any]
    item_count: int
    opened_at: str
    flush_at: str | None
    notification_id: int | None


class BatchItemOut(BaseModel):
    id: int
    title: str
    message: str
    actor: dict[str, str] | None
    data: dict[str, Any]
    created_at: str
    folded_into: int | None


class BatchDetail(BatchOut):
    items: list[BatchItemOut]


class BatchPage(BaseModel):
    items: list[BatchOut]
    next_cursor: str | None


@router.get("", response_model=BatchPage)
async def list_batches(
    services: ServicesDep,
    principal: PrincipalDep,
    user_id: Annotated[UserId | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=cursors.MAX_CURSOR)] = None,
) -> Json:
    """Open batches, oldest id first; a user token sees its own only. Pass
    ``next_cursor`` back as ``cursor`` for more."""
    after = cursors.decode("b", cursor) if cursor else None
    page = await services.batches.list_open(principal, user_id, limit=limit, cursor=after)
    return Json(paged(page, "b"))


@router.get("/{batch_id}", response_model=BatchDetail)
async def get_batch(batch_id: BatchId, services: ServicesDep, principal: PrincipalDep) -> Json:
    """A batch in any state with its held items (oldest first); once flushed,
    ``notification_id`` is the folded notification and each item's ``folded_into``."""
    return Json(await services.batches.get(principal, batch_id))


@router.post("/{batch_id}/flush", response_model=BatchOut)
async def flush_batch(batch_id: BatchId, services: ServicesDep, _server: ServerDep) -> Json:
    """Fold the batch into one notification now (``409`` if no longer open)."""
    return Json(await services.batches.flush(batch_id))


@router.delete("/{batch_id}", status_code=204, response_class=Response)
async def drop_batch(batch_id: BatchId, services: ServicesDep, _server: ServerDep) -> Response:
    """Discard the batch and everything it holds (``409`` if no longer open)."""
    await services.batches.drop(batch_id)
    return Response(status_code=204)
