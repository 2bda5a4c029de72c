"""Who may see and change deliveries, webhooks and push subscriptions; bad input is 4xx
in the documented shape and changes nothing."""

from __future__ import annotations

import uuid

import httpx

from clarion.services.container import Services

from .conftest import Sink, add_webhook, send, settle

KEY = "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM"
AUTH = "tBHItJI5svbpez7KI4CCXg"


def _token(services: Services, user_id: str) -> dict[str, str]:
    token, _ = services.auth.mint_user_token(user_id)
    return {"Authorization": f"Bearer {token}"}


async def test_deliveries_visible_to_owner_only(
    authed: httpx.AsyncClient, services: Services, sink: Sink
) -> None:
    await add_webhook(authed, sink.url())
    nid = await send(authed, "u1", ["webhook"])
    await settle(services, [nid])
    own = await authed.get(
        f"/api/v1/notifications/{nid}/deliveries", headers=_token(services, "u1")
    )
    assert own.status_code == 200 and own.json()["deliveries"][0]["status"] == "delivered"
    other = await authed.get(
        f"/api/v1/notifications/{nid}/deliveries", headers=_token(services, "u2")
    )
    assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"
    assert (await authed.get("/api/v1/notifications/999999/deliveries")).status_code == 404

    did = own.json()["deliveries"][0]["id"]
    r = await authed.post(
        f"/api/v1/notifications/deliveries/{did}/retry", headers=_token(services, "u1")
    )
    assert r.status_code == 403
    r = await authed.post(f"/api/v1/notifications/deliveries/{uuid.uuid4()}/retry")
    assert r.status_code == 404
    r = await authed.post("/api/v1/notifications/deliveries/not-a-uuid/retry")
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_failed"


async def test_webhook_validation(authed: httpx.AsyncClient, services: Services) -> None:
    for url in ["ftp://example.org/x", "http://user:pw@example.org/", "not a url at all"]:
        r = await authed.post("/api/v1/webhooks", json={"url": url})
        assert r.status_code == 422, (url, r.text)
        assert r.json()["error"]["code"] == "validation_failed"
    r = await authed.post("/api/v1/webhooks", json={"url": "https://example.org/h", "extra": 1})
    assert r.status_code == 422
    assert (await authed.get("/api/v1/webhooks")).json() == {"items": []}
    r = await authed.post(
        "/api/v1/webhooks", json={"url": "https://example.org/h"}, headers=_token(services, "u1")
    )
    assert r.status_code == 403
    hook = await add_webhook(authed, "https://example.org/h", types=["a", "b"], user_id="u9")
    assert hook["types"] == ["a", "b"] and hook["user_id"] == "u9" and hook["enabled"]
    assert (await authed.delete(f"/api/v1/webhooks/{hook['id']}")).status_code == 204
    assert (await authed.delete(f"/api/v1/webhooks/{hook['id']}")).status_code == 404
    assert (await authed.get(f"/api/v1/webhooks/{hook['id']}")).status_code == 404


async def test_private_targets_refused_unless_allowed(
    authed: httpx.AsyncClient, services: Services
) -> None:
    from clarion.errors import ValidationFailed
    from clarion.services.netguard import check_target_url

    for url in [
        "http://127.0.0.1/x",
        "http://[::1]/",
        "http://169.254.169.254/",
        "http://10.1.2.3/",
    ]:
        try:
            check_target_url(url, allow_private=False, field="url")
        except ValidationFailed:
            continue
        raise AssertionError(f"{url} accepted")
    assert check_target_url("http://127.0.0.1/x", allow_private=True, field="url")


async def test_push_subscriptions_with_user_token(
    authed: httpx.AsyncClient, services: Services
) -> None:
    body = {"endpoint": "https://push.example.org/abc", "keys": {"p256dh": KEY, "auth": AUTH}}
    mine = _token(services, "u1")
    r = await authed.post("/api/v1/users/u1/push-subscriptions", json=body, headers=mine)
    assert r.status_code == 201, r.text
    again = await authed.post("/api/v1/users/u1/push-subscriptions", json=body, headers=mine)
    assert again.status_code == 201  # same endpoint: replaced, not duplicated
    r = await authed.post("/api/v1/users/u2/push-subscriptions", json=body, headers=mine)
    assert r.status_code == 403
    bad = {"endpoint": body["endpoint"], "keys": {"p256dh": "AAAA", "auth": AUTH}}
    r = await authed.post("/api/v1/users/u1/push-subscriptions", json=bad, headers=mine)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "keys.p256dh"
    items = (await authed.get("/api/v1/users/u1/push-subscriptions", headers=mine)).json()["items"]
    assert len(items) == 1
    sid = items[0]["id"]
    r = await authed.delete(f"/api/v1/users/u2/push-subscriptions/{sid}")
    assert r.status_code == 404
    r = await authed.delete(f"/api/v1/users/u1/push-subscriptions/{sid}", headers=mine)
    assert r.status_code == 204
