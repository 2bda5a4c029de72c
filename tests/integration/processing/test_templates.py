"""Stored templates through the API on both backends: CRUD, compile errors, duplicates,
preview with locale fallback, and sandbox escapes that must be a 422, never a 500."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from clarion.domain.rendering import RenderError
from clarion.errors import NotFound
from clarion.services.container import Services
from tests.integration.processing.conftest import err

T = "/api/v1/templates"

FOLLOW = {
    "key": "follow",
    "kind": "simple",
    "default_locale": "en",
    "bodies": {
        "en": {
            "in_app.title": "{{ data.actor }} followed you",
            "email.subject": "Hi {{ user.name|default('there') }}",
            "email.html": "<p>{{ data.actor }}</p>",
            "sms.text": "{{ data.actor }} follows you",
        },
        "pt": {"in_app.title": "{{ data.actor }} começou a seguir você"},
        "pt-PT": {"in_app.title": "{{ data.actor }} começou a seguir-te"},
    },
}


async def create(client: httpx.AsyncClient, **overrides: Any) -> httpx.Response:
    return await client.post(T, json={**FOLLOW, **overrides})


async def test_crud_round_trip(authed: httpx.AsyncClient) -> None:
    r = await create(authed)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["key"] == "follow" and created["version"] == 1
    assert created["bodies"] == FOLLOW["bodies"]

    r = await authed.get(f"{T}/follow")
    assert r.status_code == 200 and r.json() == created

    await create(authed, key="alpha")
    r = await authed.get(T, params={"limit": 1})
    page = r.json()
    assert [t["key"] for t in page["items"]] == ["alpha"] and page["next_cursor"] == "alpha"
    r = await authed.get(T, params={"limit": 1, "cursor": page["next_cursor"]})
    assert [t["key"] for t in r.json()["items"]] == ["follow"]

    new = {"kind": "simple", "default_locale": "en", "bodies": {"en": {"in_app.title": "v2"}}}
    r = await authed.put(f"{T}/follow", json=new)
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2 and r.json()["bodies"] == new["bodies"]
    r = await authed.post(f"{T}/follow/preview", json={})
    assert r.json()["parts"] == {"in_app.title": "v2"}  # the cache did not serve v1

    assert (await authed.delete(f"{T}/follow")).status_code == 204
    assert err(await authed.get(f"{T}/follow"))["code"] == "not_found"
    assert (await authed.delete(f"{T}/follow")).status_code == 404
    assert (await authed.put(f"{T}/follow", json=new)).status_code == 404


async def test_duplicate_key_is_409(authed: httpx.AsyncClient) -> None:
    assert (await create(authed)).status_code == 201
    r = await create(authed)
    assert r.status_code == 409 and err(r)["code"] == "conflict"


@pytest.mark.parametrize(
    ("bodies", "field"),
    [
        ({"en": {"in_app.title": "{{ data.x "}}, "bodies.en.in_app.title"),
        ({"en": {"email.html": "{% include 'x' %}"}}, "bodies.en.email.html"),
        ({"en": {"in_app.title": "{{ x|nosuchfilter }}"}}, "bodies.en.in_app.title"),
        ({"en": {"fax.text": "hi"}}, "bodies.en.fax.text"),
        ({"en": {}}, "bodies.en.bodies"),
    ],
)
async def test_compile_errors_are_422(
    authed: httpx.AsyncClient, bodies: dict[str, Any], field: str
) -> None:
    r = await create(authed, bodies=bodies)
    assert r.status_code == 422, r.text
    e = err(r)
    assert e["code"] == "template_invalid"
    assert field in [d["field"] for d in e["details"]]
    assert (await authed.get(f"{T}/follow")).status_code == 404  # nothing stored


async def test_every_bad_locale_is_reported_and_update_keeps_old(authed: httpx.AsyncClient) -> None:
    assert (await create(authed)).status_code == 201
    bad = {
        "default_locale": "de",
        "bodies": {"en": {"in_app.title": "{{"}, "pt": {"sms.text": "{% endfor %}"}},
    }
    r = await authed.put(f"{T}/follow", json=bad)
    assert r.status_code == 422
    fields = {d["field"] for d in err(r)["details"]}
    assert {"default_locale", "bodies.en.in_app.title", "bodies.pt.sms.text"} <= fields
    assert (await authed.get(f"{T}/follow")).json()["version"] == 1


async def test_preview_with_locale_fallback(authed: httpx.AsyncClient) -> None:
    assert (await create(authed)).status_code == 201
    sample = {"data": {"actor": "Ana"}, "user": {"name": "Bo"}}

    r = await authed.post(f"{T}/follow/preview", json={**sample, "locale": "en-US"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["locale"] == "en"
    assert body["channels"]["in_app"] == {"title": "Ana followed you"}
    assert body["channels"]["email"] == {"subject": "Hi Bo", "html": "<p>Ana</p>"}
    assert body["parts"]["sms.text"] == "Ana follows you"

    cases = {"pt-BR": "pt", "pt_pt": "pt-PT", "de": "en", None: "en"}
    for wanted, chosen in cases.items():
        r = await authed.post(f"{T}/follow/preview", json={**sample, "locale": wanted})
        assert r.json()["locale"] == chosen, wanted

    # email.html is autoescaped, the plain-text parts are not
    r = await authed.post(f"{T}/follow/preview", json={"data": {"actor": "<b>A&B</b>"}})
    parts = r.json()["parts"]
    assert parts["email.html"] == "<p>&lt;b&gt;A&amp;B&lt;/b&gt;</p>"
    assert parts["in_app.title"] == "<b>A&B</b> followed you"


async def test_preview_of_unknown_template_is_404(authed: httpx.AsyncClient) -> None:
    assert (await authed.post(f"{T}/nope/preview", json={})).status_code == 404


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ 'x'|attr('format') }}",
        "{{ '{0.__class__}'.format(1) }}",
        "{% for i in range(10**9) %}{{ i }}{% endfor %}",
        "{{ 'a' * 10**9 }}",
        "{% for i in range(9999) %}{% for j in range(9999) %}x{% endfor %}{% endfor %}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ data.missing.attribute }}",
    ],
)
async def test_sandbox_escapes_are_422_never_500(authed: httpx.AsyncClient, source: str) -> None:
    r = await create(authed, bodies={"en": {"in_app.message": source}})
    if r.status_code == 422:  # refused at compile time: as good
        assert err(r)["code"] == "template_invalid"
        return
    assert r.status_code == 201, r.text
    r = await authed.post(f"{T}/follow/preview", json={"data": {}})
    assert r.status_code == 422, r.text
    e = err(r)
    assert e["code"] == "template_invalid"
    assert e["details"][0]["field"] == "in_app.message"


async def test_templates_need_an_api_key(
    client: httpx.AsyncClient, authed: httpx.AsyncClient, services: Services
) -> None:
    token, _ = services.auth.mint_user_token("ana")
    headers = {"Authorization": f"Bearer {token}"}
    r = await client.get(T, headers=headers)
    assert r.status_code == 403 and err(r)["code"] == "forbidden"


async def test_render_for_is_what_the_pipeline_calls(
    authed: httpx.AsyncClient, services: Services
) -> None:
    assert (await create(authed)).status_code == 201
    parts = await services.templates.render_for(
        "follow",
        locale="pt-BR",
        data={"actor": "Ana"},
        user={"name": "Bo"},
        notification={"type": "follow"},
    )
    assert parts == {"in_app.title": "Ana começou a seguir você"}
    with pytest.raises(NotFound):
        await services.templates.render_for("nope", locale=None, data={}, user={}, notification={})
    await authed.put(f"{T}/follow", json={"bodies": {"en": {"in_app.title": "{{ x.y }}"}}})
    with pytest.raises(RenderError):
        await services.templates.render_for(
            "follow", locale="en", data={}, user={}, notification={}
        )
