"""Every state-changing operation an ``admin`` key makes through the API (templates,
batching rules, experiments, retries, webhooks, user erasure: the ``admin`` rows of
api/operations.py) written to the audit log: who, when, what, before and after.

Pure ASGI middleware, innermost: a request it does not audit costs a method check.
"before" is the object as it was, read just before the operation runs (every audited
path that names an existing object has a reader below; a create has none: there was
nothing); "after" is the JSON the operation answered (nothing for a 204)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clarion.api.operations import OPERATIONS
from clarion.domain.types import ApiScope
from clarion.errors import ClarionError
from clarion.services.container import Services

log = logging.getLogger("clarion.audit")

CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_AFTER = 256 * 1024
_N = "/api/v1/notifications"

Reader = Callable[[Services, dict[str, Any]], Awaitable[Any]]
_EXPERIMENT: Reader = lambda s, p: s.experiments.get(p["experiment_id"])  # noqa: E731
#: How to read an object before the operation changes it, per path template.
BEFORE: dict[str, Reader] = {
    "/api/v1/templates/{key}": lambda s, p: s.templates.get(p["key"]),
    "/api/v1/webhooks/{endpoint_id}": lambda s, p: s.webhooks.get(p["endpoint_id"]),
    # An erasure: which fields were held, not their values (see PrivacyService.held).
    "/api/v1/users/{user_id}": lambda s, p: s.privacy.held(p["user_id"]),
    f"{_N}/ab-tests/{{experiment_id}}": _EXPERIMENT,
    **{f"{_N}/ab-tests/{{experiment_id}}/{a}": _EXPERIMENT for a in ("start", "pause", "stop")},
    f"{_N}/ab-tests/{{experiment_id}}/promote": _EXPERIMENT,
    f"{_N}/batching/rules": lambda s, p: s.batching.stored(),
    f"{_N}/batching/rules/{{type}}": lambda s, p: s.batching.stored_one(p["type"]),
    f"{_N}/deliveries/{{delivery_id}}/retry": lambda s, p: s.deliveries.get(p["delivery_id"]),
}


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)
    out = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)" for i, p in enumerate(parts))
    return re.compile(out + "$")


#: The admin operations that change something: (method, path pattern, path template).
AUDITED = [
    (method, _pattern(path), path)
    for (method, path), rule in OPERATIONS.items()
    if method in CHANGES and rule.scope is ApiScope.ADMIN
]


def _match(method: str, path: str) -> tuple[str, dict[str, Any]] | None:
    for m, pattern, template in AUDITED:
        found = pattern.match(path) if m == method else None
        if found is not None:
            return template, {k: unquote(v) for k, v in found.groupdict().items()}
    return None


class AdminAudit:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in CHANGES:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        matched = _match(method, scope["path"])
        if matched is None:
            await self.app(scope, receive, send)
            return
        path_format, params = matched
        services: Services = scope["app"].state.services
        before = await _read_before(services, path_format, params)
        status = 0
        body = bytearray()

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and len(body) < MAX_AFTER:
                body.extend(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, capture)
        principal = scope.get("state", {}).get("principal")
        route = getattr(scope.get("route"), "path_format", None)
        if status >= 400 or route != path_format or principal is None:
            return
        if principal.api_key_id is None:
            return
        try:
            after = json.loads(body) if body else None
        except ValueError:
            after = None
        try:
            await services.dashboard.audit(
                api_key_id=principal.api_key_id,
                via="api",
                action=f"{method} {path_format}",
                target=scope["path"],
                before=before,
                after=after,
            )
        except ClarionError:  # the change stands; a lost audit row is logged loudly
            log.exception("could not write the audit row of %s %s", method, scope["path"])


async def _read_before(services: Services, path_format: str, params: dict[str, Any]) -> Any:
    reader = BEFORE.get(path_format)
    if reader is None:
        return None
    try:
        return await reader(services, params)
    except ClarionError:  # absent: the operation answers its own 404
        return None
