"""``/api/v1/users``: profiles and user tokens; a user's data exported or erased."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Response
from fastapi.responses import StreamingResponse

from clarion.api.deps import PrincipalDep, ServerDep, ServicesDep
from clarion.api.responses import Json
from clarion.api.routes import ERROR_RESPONSES
from clarion.api.schemas import TokenRequest, TokenResponse, UserId, UserProfile, UserProfileIn

router = APIRouter(prefix="/api/v1/users", tags=["users"], responses=ERROR_RESPONSES)

UserPath = Annotated[UserId, Path()]


@router.get("/{user_id}", response_model=UserProfile)
async def get_user(user_id: UserPath, services: ServicesDep, principal: PrincipalDep) -> Json:
    return Json(await services.users.get(principal.scope_user(user_id)))


@router.put("/{user_id}", response_model=UserProfile)
async def put_user(
    user_id: UserPath, body: UserProfileIn, services: ServicesDep, principal: PrincipalDep
) -> Json:
    """Create or update a profile; only the fields given change."""
    uid = principal.scope_user(user_id)
    profile = body.model_dump(exclude_unset=True)
    return Json(await services.users.put(uid, profile, caller_kind=principal.kind))


@router.post("/{user_id}/token", response_model=TokenResponse)
async def mint_token(
    user_id: UserPath,
    services: ServicesDep,
    _server: ServerDep,
    body: Annotated[TokenRequest | None, Body()] = None,
) -> Json:
    """A signed, expiring token that acts for this one user (for browsers and apps)."""
    token, ttl = services.auth.mint_user_token(user_id, body.ttl_seconds if body else None)
    return Json({"token": token, "user_id": user_id, "expires_in": ttl})


@router.delete("/{user_id}", status_code=204, response_class=Response)
async def erase_user(user_id: UserPath, services: ServicesDep, _server: ServerDep) -> Response:
    """Erase everything Clarion holds about the user (profile, notifications, deliveries,
    push subscriptions, preferences, scheduled sends, batches); their events are kept,
    anonymised. ``204`` whether or not anything was held: erasing again is a no-op."""
    await services.privacy.erase(user_id)
    return Response(status_code=204)


@router.get(
    "/{user_id}/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/json": {}}, "description": "The user's data"}},
)
async def export_user(
    user_id: UserPath, services: ServicesDep, _server: ServerDep
) -> StreamingResponse:
    """Everything Clarion holds about the user as one JSON document, streamed (see
    docs/api.md, "A user's data"). ``404`` when nothing is held."""
    pieces = await services.privacy.export(user_id)
    return StreamingResponse(
        pieces,
        media_type="application/json",
        headers={
            "Cache-Control": "no-store",
            "Content-Disposition": 'attachment; filename="clarion-user-export.json"',
        },
    )
