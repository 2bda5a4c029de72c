"""``/api/v1/notifications/preferences/{user_id}``: a user's notification preferences,
with an API key or that user's own token. No stored preferences reads as the defaults."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path
from pydantic import BaseModel

from clarion.api.deps import PrincipalDep, ServicesDep
from clarion.api.responses import Json
from clarion.api.routes import ERROR_RESPONSES
from clarion.api.schemas import UserId
from clarion.domain.batching import DigestFrequency

router = APIRouter(
    prefix="/api/v1/notifications/preferences", tags=["preferences"], responses=ERROR_RESPONSES
)

UserPath = Annotated[UserId, Path()]

EXAMPLE = {
    "channels": {"email": True, "sms": False},
    "types": {"follow": {"email": False}, "invoice": {"sms": True}},
    "digest": {"comment": "daily", "like": "hourly"},
    "quiet_hours": {
        "start": "22:00",
        "end": "07:00",
        "timezone": "Europe/Lisbon",
        "weekdays": [0, 1, 2, 3, 4],
    },
    "digest_time": "09:00",
    "timezone": "Europe/Lisbon",
}


class QuietHoursOut(BaseModel):
    start: str
    end: str
    timezone: str
    weekdays: list[int]


class PreferencesOut(BaseModel):
    channels: dict[str, bool]
    types: dict[str, dict[str, bool]]
    digest: dict[str, DigestFrequency]
    quiet_hours: QuietHoursOut | None
    digest_time: str
    timezone: str


@router.get("/{user_id}", response_model=PreferencesOut)
async def get_preferences(
    user_id: UserPath, services: ServicesDep, principal: PrincipalDep
) -> Json:
    prefs = await services.preferences.get_preferences(principal.scope_user(user_id))
    return Json(prefs.to_json())


@router.put("/{user_id}", response_model=PreferencesOut)
async def put_preferences(
    user_id: UserPath,
    services: ServicesDep,
    principal: PrincipalDep,
    body: Annotated[
        dict[str, Any],
        Body(
            description="The whole preferences document (see docs/preferences.md); "
            "omitted fields take their defaults. Every problem is listed in `details`.",
            examples=[EXAMPLE],
        ),
    ],
) -> Json:
    """Replace the user's preferences; invalid ones are a 422 and change nothing."""
    prefs = await services.preferences.put(principal.scope_user(user_id), body)
    return Json(prefs.to_json())
