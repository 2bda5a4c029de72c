"""System: the database, Redis, the broker, nodes and their connections, the outbox,
and the settings in effect (secrets hidden)."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import Response

from clarion.services.dashboard import DashSession
from clarion.web.dashboard.render import render
from clarion.web.dashboard.session import services_of

SECRET_WORDS = ("secret", "password", "token", "key", "dsn", "credential", "sid")


def _shown(name: str, value: Any) -> str:
    """A setting as shown: secrets (by type, or text under a secret-like name) hidden,
    Apprise URLs (they carry tokens) counted, credentials in URLs cut out."""
    if value is None:
        return "—"
    if isinstance(value, SecretStr):
        return "(hidden)" if value.get_secret_value() else "—"
    if "apprise_urls" in name and isinstance(value, list | tuple):
        return f"({len(value)} hidden)" if value else "[]"
    if isinstance(value, str) and any(w in name.lower() for w in SECRET_WORDS):
        return "(hidden)" if value else "—"
    text = str(value)
    if "://" in text and "@" in text:  # a URL with credentials in it
        scheme, _, rest = text.partition("://")
        return f"{scheme}://(hidden)@{rest.rpartition('@')[2]}"
    return text


async def system(request: Request, session: DashSession) -> Response:
    services = services_of(request)
    status = await services.system_status()
    backlog = await services.deliveries.backlog()
    workers = await services.dashboard_reads.workers()
    settings = sorted(
        (name, _shown(name, getattr(services.settings, name)))
        for name in type(services.settings).model_fields
    )
    return render(
        request,
        "system.html",
        session=session,
        active="system",
        status=status,
        backlog=backlog,
        workers=workers,
        embedded_worker=services.settings.embedded_worker,
        settings=settings,
    )
