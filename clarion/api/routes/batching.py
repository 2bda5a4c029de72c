"""``/api/v1/notifications/batching/rules``: how notifications of each type are held and
folded (API key only). Rules are validated by ``domain.batching.BatchRule``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Response
from pydantic import BaseModel

from clarion.api.deps import ServerDep, ServicesDep
from clarion.api.responses import Json
from clarion.api.routes import ERROR_RESPONSES
from clarion.api.schemas import TypeName
from clarion.domain.batching import BatchStrategy, DigestFrequency

router = APIRouter(
    prefix="/api/v1/notifications/batching", tags=["batching"], responses=ERROR_RESPONSES
)

TypePath = Annotated[TypeName, Path()]
EXAMPLE_RULES = [
    {"type": "follow", "strategy": "window", "window_seconds": 600},
    {"type": "like", "strategy": "count", "count": 10},
    {"type": "comment", "strategy": "digest", "frequency": "daily", "digest_time": "18:00"},
]


class BatchRuleOut(BaseModel):
    type: str
    strategy: BatchStrategy
    window_seconds: int | None
    count: int | None
    frequency: DigestFrequency | None
    digest_time: str | None


@router.get("/rules", response_model=list[BatchRuleOut])
async def list_rules(services: ServicesDep, _server: ServerDep) -> Json:
    rules = await services.batching.rules()
    return Json([rules[t].to_json() for t in sorted(rules)])


@router.put("/rules", response_model=list[BatchRuleOut])
async def replace_rules(
    services: ServicesDep,
    _server: ServerDep,
    body: Annotated[
        list[dict[str, Any]],
        Body(
            max_length=500,
            description="The whole set: one rule per type (see docs/batching.md).",
            examples=[EXAMPLE_RULES],
        ),
    ],
) -> Json:
    """Replace every rule at once; an invalid rule is a 422 and changes nothing."""
    rules = await services.batching.replace_all(body)
    return Json([r.to_json() for r in rules])


@router.put("/rules/{type}", response_model=BatchRuleOut)
async def put_rule(
    type: TypePath,
    services: ServicesDep,
    _server: ServerDep,
    body: Annotated[
        dict[str, Any],
        Body(
            description="One rule; `type` may be omitted (it is the path's).",
            examples=[{"strategy": "window_or_count", "window_seconds": 300, "count": 5}],
        ),
    ],
) -> Json:
    """Create or replace the rule of one type."""
    rule = await services.batching.put(type, body)
    return Json(rule.to_json())


@router.delete("/rules/{type}", status_code=204, response_class=Response)
async def delete_rule(type: TypePath, services: ServicesDep, _server: ServerDep) -> Response:
    await services.batching.delete(type)
    return Response(status_code=204)
