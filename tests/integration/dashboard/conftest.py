"""The app with the dashboard installed, and a browser-like client signed in to it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from clarion.api.app import create_app
from clarion.config import Settings
from clarion.services.container import Services
from clarion.web.dashboard import routes
from tests.integration.delivery.conftest import delivery_settings


@pytest.fixture
def settings(db_url: str) -> Settings:
    """Webhooks to this machine allowed: the tests make dead deliveries."""
    return delivery_settings(db_url)


@pytest.fixture
async def web(settings: Settings, services: Services) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, services)
    routes.install(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://clarion.test") as c:
        yield c


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


async def sign_in(web: httpx.AsyncClient, key: str) -> httpx.Response:
    form = await web.get("/dashboard/login")
    return await web.post(
        "/dashboard/login", data={"key": key, "csrf": csrf_of(form.text), "next": "/dashboard"}
    )


@pytest.fixture
async def admin(web: httpx.AsyncClient, api_key: str) -> httpx.AsyncClient:
    r = await sign_in(web, api_key)
    assert r.status_code == 303, r.text
    return web
