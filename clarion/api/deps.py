"""FastAPI dependencies: the services, and who is calling."""

from __future__ import annotations

from collections.abc import Coroutine, Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from clarion.api.operations import access
from clarion.domain.access import Access
from clarion.errors import RateLimited, ValidationFailed
from clarion.hub.ratelimit import RateDecision
from clarion.services.auth import Principal
from clarion.services.container import Services

_bearer = HTTPBearer(auto_error=False, description="A server API key or a user token")


_QUERY_NAMES: dict[int, frozenset[str]] = {}


def reject_unknown_query(request: Request) -> None:
    """Refuse query parameters a route does not declare: a typo (``?statu=unread``)
    must not silently widen a request. Checked once the caller is authenticated, so an
    anonymous request gets its 401 first."""
    if not request.query_params:
        return
    route = request.scope.get("route")
    if getattr(route, "dependant", None) is None:
        return
    names = route_query_names(route)
    unknown = sorted(set(request.query_params) - names)
    if unknown:
        raise ValidationFailed(
            "unknown query parameter",
            [{"field": f"query.{k}", "problem": "unknown parameter"} for k in unknown],
        )
    # Every declared parameter is single-valued: ``?user_id=a&user_id=b`` is ambiguous
    # (the framework would silently take one), so it is refused.
    keys = [k for k, _ in request.query_params.multi_items()]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ValidationFailed(
            "repeated query parameter",
            [{"field": f"query.{k}", "problem": "given more than once"} for k in repeated],
        )


def route_query_names(route: Any) -> frozenset[str]:
    """The query parameters a route declares (its own and its dependencies'), cached."""
    names = _QUERY_NAMES.get(id(route))
    if names is None:
        names = frozenset(_query_names(route.dependant))
        _QUERY_NAMES[id(route)] = names
    return names


def _query_names(dependant: Any) -> Iterator[str]:
    """The query parameters of a route and of all its (nested) dependencies."""
    for param in dependant.query_params:
        yield param.alias
    for sub in dependant.dependencies:
        yield from _query_names(sub)


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_services(request: Request) -> Services:
    """Async on purpose: FastAPI runs plain ``def`` dependencies in a thread pool, a
    thread hop per request for a dictionary lookup."""
    return services_of(request)


async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    services = services_of(request)
    token = credentials.credentials if credentials is not None else None
    principal = await services.auth.authenticate(token)
    request.state.principal = principal
    principal.authorize(route_access(request))
    reject_unknown_query(request)
    if principal.api_key_id is not None:
        await _rate_limit(services, principal, request)
    return principal


def route_access(request: Request) -> Access:
    """Who may call the matched route (api/operations.py): one dictionary lookup."""
    route = request.scope.get("route")
    return access(request.method, getattr(route, "path_format", ""))


async def _rate_limit(services: Services, principal: Principal, request: Request) -> None:
    """Per API key (its own limit, else ``CLARION_RATE_LIMIT_API``), shared across nodes
    through Redis and per process without it. Headers follow the IETF RateLimit fields
    draft."""
    decision = await api_limit_hit(services, principal)
    # Routes return their own Response objects, so the headers travel in the request
    # state and the outermost middleware adds them (see api/middleware.Metrics).
    request.state.extra_headers = admitted(decision)


def api_limit_hit(services: Services, principal: Principal) -> Coroutine[Any, Any, RateDecision]:
    """One request's hit on its API key's limit: the routes' (above) and api/fastpath's.
    A key created with ``--rate-limit`` counts against its own limit (and its own
    counters: the limiter keys them by the limit too)."""
    assert principal.api_key_id is not None
    limit = principal.rate_limit or services.settings.rate_limit_api
    return services.hub.limiter.hit("api", principal.api_key_id, limit)


def admitted(decision: RateDecision) -> dict[str, str]:
    """The API limiter's verdict on one request: its RateLimit-* headers when it may go
    on, :class:`RateLimited` (429 with the same headers and Retry-After) when not."""
    headers = decision.headers()
    if not decision.allowed:
        raise RateLimited(
            "too many requests for this API key",
            retry_after=decision.reset_after,
            headers=headers,
        )
    return headers


async def get_server(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    principal.require_server()
    return principal


ServicesDep = Annotated[Services, Depends(get_services)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
ServerDep = Annotated[Principal, Depends(get_server)]
