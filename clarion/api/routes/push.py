"""``/api/v1/users/{user_id}/push-subscriptions``: browsers' Web Push subscriptions
(a server API key, or that user's own token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, StringConstraints

from clarion.api.deps import PrincipalDep, ServicesDep
from clarion.api.responses import Json
from clarion.api.routes import ERROR_RESPONSES
from clarion.api.schemas import Strict, UserId

router = APIRouter(prefix="/api/v1/users", tags=["push"], responses=ERROR_RESPONSES)

UserPath = Annotated[UserId, Path()]
SubscriptionId = Annotated[str, Path(min_length=1, max_length=36, pattern=r"^[0-9a-f\-]+$")]
B64Url = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_\-]+=*$")
]


class PushKeys(Strict):
    p256dh: B64Url
    auth: B64Url


class PushSubscriptionIn(Strict):
    """The browser's ``PushSubscription.toJSON()``."""

    endpoint: Annotated[str, StringConstraints(min_length=8, max_length=2000)]
    keys: PushKeys
    expirationTime: int | None = None  # the browser's own field name


class PushSubscriptionOut(BaseModel):
    id: str
    user_id: str
    endpoint: str
    created_at: str


class PushSubscriptionList(BaseModel):
    items: list[PushSubscriptionOut]


@router.post("/{user_id}/push-subscriptions", status_code=201, response_model=PushSubscriptionOut)
async def add_push_subscription(
    user_id: UserPath, body: PushSubscriptionIn, services: ServicesDep, principal: PrincipalDep
) -> Json:
    """Store a subscription (the same endpoint again replaces its keys). A push service
    answering 404/410 removes it."""
    uid = principal.scope_user(user_id)
    sub = await services.push_subscriptions.add(
        uid, body.endpoint, body.keys.p256dh, body.keys.auth
    )
    return Json(sub, status_code=201)


@router.get("/{user_id}/push-subscriptions", response_model=PushSubscriptionList)
async def list_push_subscriptions(
    user_id: UserPath, services: ServicesDep, principal: PrincipalDep
) -> Json:
    uid = principal.scope_user(user_id)
    return Json({"items": await services.push_subscriptions.list(uid)})


@router.delete(
    "/{user_id}/push-subscriptions/{subscription_id}", status_code=204, response_class=Response
)
async def delete_push_subscription(
    user_id: UserPath,
    subscription_id: SubscriptionId,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    uid = principal.scope_user(user_id)
    await services.push_subscriptions.delete(uid, subscription_id)
    return Response(status_code=204)
