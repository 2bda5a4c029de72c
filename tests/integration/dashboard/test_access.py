"""Who may open the dashboard, the session cookie, CSRF and the page headers."""

from __future__ import annotations

import httpx

from clarion.services.container import Services

from .conftest import csrf_of, sign_in


async def test_pages_need_a_session(web: httpx.AsyncClient) -> None:
    r = await web.get("/dashboard/system")
    assert r.status_code == 303
    assert r.headers["location"] == "/dashboard/login?next=/dashboard/system"
    r = await web.post("/dashboard/dead-letters/retry", data={"csrf": "x"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"


async def test_admin_key_signs_in_with_a_strict_cookie(
    web: httpx.AsyncClient, api_key: str
) -> None:
    r = await sign_in(web, api_key)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=" in cookie
    assert "Secure" not in cookie  # plain http here
    page = await web.get("/dashboard")
    assert page.status_code == 200 and "Health score" in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp
    assert "<script>" not in page.text and " style=" not in page.text


async def test_secure_cookie_behind_https(web: httpx.AsyncClient, api_key: str) -> None:
    form = await web.get("/dashboard/login")
    r = await web.post(
        "/dashboard/login",
        data={"key": api_key, "csrf": csrf_of(form.text)},
        headers={"X-Forwarded-Proto": "https"},
    )
    assert "Secure" in r.headers["set-cookie"]


async def test_send_key_and_user_token_are_refused(
    web: httpx.AsyncClient, services: Services
) -> None:
    _, send_key = await services.auth.create_api_key("sender", ["send"])
    r = await sign_in(web, send_key)
    assert r.status_code == 403 and "can only send" in r.text
    token, _ = services.auth.mint_user_token("ana")
    r = await sign_in(web, token)
    assert r.status_code == 403 and "user token" in r.text
    r = await sign_in(web, "clk_nonsense")
    assert r.status_code == 401
    assert (await web.get("/dashboard")).status_code == 303


async def test_read_key_gets_a_read_only_view(web: httpx.AsyncClient, services: Services) -> None:
    _, read_key = await services.auth.create_api_key("viewer", ["read"])
    assert (await sign_in(web, read_key)).status_code == 303
    page = await web.get("/dashboard/dead-letters")
    assert page.status_code == 200 and "(read-only)" in page.text
    r = await web.post(
        "/dashboard/dead-letters/retry", data={"csrf": csrf_of(page.text), "delivery_id": "x"}
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


async def test_csrf_token_is_required(admin: httpx.AsyncClient) -> None:
    r = await admin.post("/dashboard/dead-letters/retry", data={"delivery_id": "x"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
    r = await admin.post("/dashboard/dead-letters/retry", data={"csrf": "forged"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
    r = await admin.post("/dashboard/login", data={"key": "clk_x"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"


async def test_logout_revokes_the_session(admin: httpx.AsyncClient) -> None:
    page = await admin.get("/dashboard/system")
    stolen = admin.cookies.get("clarion_dashboard")
    r = await admin.post("/dashboard/logout", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/login"
    assert (await admin.get("/dashboard/system")).status_code == 303
    # The old cookie value, replayed, is refused too: the session is revoked server-side.
    admin.cookies.set("clarion_dashboard", stolen or "", path="/dashboard")
    assert (await admin.get("/dashboard/system")).status_code == 303


async def test_revoking_the_key_ends_its_sessions(
    web: httpx.AsyncClient, services: Services
) -> None:
    key_id, key = await services.auth.create_api_key("short-lived", ["admin"])
    assert (await sign_in(web, key)).status_code == 303
    assert (await web.get("/dashboard/system")).status_code == 200
    await services.auth.revoke_api_key(key_id)
    assert (await web.get("/dashboard/system")).status_code == 303


async def test_system_page_hides_secrets(admin: httpx.AsyncClient) -> None:
    page = await admin.get("/dashboard/system")
    assert page.status_code == 200
    assert "test-secret-key-" not in page.text and "(hidden)" in page.text


def test_settings_shown_hide_secrets_not_numbers() -> None:
    from pydantic import SecretStr

    from clarion.web.dashboard.system import _shown

    assert _shown("secret_key", SecretStr("s3cr3t")) == "(hidden)"
    assert _shown("smtp_password", "pw") == "(hidden)"
    assert _shown("api_key_cache_seconds", 5.0) == "5.0"
    assert _shown("user_token_ttl_seconds", 3600) == "3600"
    assert _shown("apprise_urls", ["tgram://bot-token/123"]) == "(1 hidden)"
    assert _shown("redis_url", "redis://u:p@host:6379/0") == "redis://(hidden)@host:6379/0"
    assert _shown("smtp_host", None) == "—"
