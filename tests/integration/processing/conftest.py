"""Helpers for the processing API tests (templates, preferences, batching, actions)."""

from __future__ import annotations

from typing import Any

import httpx

from clarion.services.container import Services


def err(response: httpx.Response) -> dict[str, Any]:
    """The documented error body, checked for shape."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details", "doc"}, body
    assert body["error"]["doc"] == f"/docs/errors#{body['error']['code']}", body
    return dict(body["error"])


async def user_client(
    client: httpx.AsyncClient, services: Services, user_id: str
) -> httpx.AsyncClient:
    """A client of the same app authenticated with ``user_id``'s own token."""
    token, _ttl = services.auth.mint_user_token(user_id)
    return httpx.AsyncClient(
        transport=client._transport,
        base_url=client.base_url,
        headers={"Authorization": f"Bearer {token}"},
    )
