"""``/api/v1/users``: profiles and user tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path

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
