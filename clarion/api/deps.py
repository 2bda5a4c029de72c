"""FastAPI dependencies: the services, and who is calling."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from clarion.services.auth import Principal
from clarion.services.container import Services

_bearer = HTTPBearer(auto_error=False, description="A server API key or a user token")


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    services = get_services(request)
    token = credentials.credentials if credentials is not None else None
    principal = await services.auth.authenticate(token)
    request.state.principal = principal
    return principal


async def get_server(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    principal.require_server()
    return principal


ServicesDep = Annotated[Services, Depends(get_services)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
ServerDep = Annotated[Principal, Depends(get_server)]
