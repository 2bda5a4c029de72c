"""``/api/v1/webhooks``: endpoints that receive ``webhook`` deliveries (server API keys)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field, StringConstraints

from clarion.api.deps import ServerDep, ServicesDep
from clarion.api.responses import Json
from clarion.api.routes import ERROR_RESPONSES
from clarion.api.schemas import Strict, TypeName, UserId

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"], responses=ERROR_RESPONSES)

EndpointId = Annotated[str, Path(min_length=1, max_length=36, pattern=r"^[0-9a-f\-]+$")]


class WebhookIn(Strict):
    url: Annotated[str, StringConstraints(min_length=8, max_length=2000)]
    user_id: UserId | None = Field(default=None, description="Only this user's notifications.")
    types: Annotated[list[TypeName], Field(min_length=1, max_length=100)] | None = Field(
        default=None, description="Only these notification types."
    )
    description: Annotated[str, StringConstraints(max_length=200)] | None = None


class Webhook(BaseModel):
    id: str
    url: str
    user_id: str | None
    types: list[str] | None
    description: str | None
    enabled: bool
    disabled_reason: str | None
    created_at: str


class WebhookCreated(Webhook):
    secret: str = Field(description="whsec_... signing secret; shown only in this response.")


class WebhookList(BaseModel):
    items: list[Webhook]


@router.post("", status_code=201, response_model=WebhookCreated)
async def create_webhook(body: WebhookIn, services: ServicesDep, _server: ServerDep) -> Json:
    """Register an endpoint. Deliveries are signed per Standard Webhooks with the returned
    secret; a 410 answer disables the endpoint."""
    created = await services.webhooks.create(
        body.url, user_id=body.user_id, types=body.types, description=body.description
    )
    return Json(created, status_code=201)


@router.get("", response_model=WebhookList)
async def list_webhooks(services: ServicesDep, _server: ServerDep) -> Json:
    return Json({"items": await services.webhooks.list()})


@router.get("/{endpoint_id}", response_model=Webhook)
async def get_webhook(endpoint_id: EndpointId, services: ServicesDep, _server: ServerDep) -> Json:
    return Json(await services.webhooks.get(endpoint_id))


@router.delete("/{endpoint_id}", status_code=204, response_class=Response)
async def delete_webhook(
    endpoint_id: EndpointId, services: ServicesDep, _server: ServerDep
) -> Response:
    await services.webhooks.delete(endpoint_id)
    return Response(status_code=204)
