"""``/api/v1/templates``: stored templates (API key only). Bodies are compiled when saved
(422 ``template_invalid`` naming each bad part); ``/preview`` renders with sample data."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field, StringConstraints

from clarion.api.deps import ServerDep, ServicesDep
from clarion.api.responses import Json
from clarion.api.routes import ERROR_RESPONSES, paged
from clarion.api.schemas import Strict
from clarion.domain import cursors
from clarion.domain.types import TemplateKind
from clarion.services.templates import KEY_PATTERN, LOCALE_PATTERN, MAX_LOCALES, TemplateDraft

router = APIRouter(prefix="/api/v1/templates", tags=["templates"], responses=ERROR_RESPONSES)

TemplateKey = Annotated[str, StringConstraints(max_length=100, pattern=KEY_PATTERN)]
Locale = Annotated[str, StringConstraints(max_length=35, pattern=LOCALE_PATTERN)]
KeyPath = Annotated[str, Path(max_length=100, pattern=KEY_PATTERN)]
Bodies = Annotated[
    dict[Locale, dict[str, str]],
    Field(
        min_length=1,
        max_length=MAX_LOCALES,
        description="Per locale, the Jinja2 body of each part: in_app.title, in_app.message, "
        "email.subject, email.html, email.text, push.title, push.body, sms.text.",
        examples=[{"en": {"in_app.title": "{{ data.actor }} followed you"}}],
    ),
]


class TemplateContent(Strict):
    kind: TemplateKind = TemplateKind.SIMPLE
    bodies: Bodies
    default_locale: Locale = "en"
    description: Annotated[str, StringConstraints(max_length=500)] | None = None

    def draft(self) -> TemplateDraft:
        return TemplateDraft(
            kind=self.kind,
            bodies=self.bodies,
            default_locale=self.default_locale,
            description=self.description,
        )


class TemplateIn(TemplateContent):
    key: TemplateKey


class Template(BaseModel):
    key: str
    kind: TemplateKind
    bodies: dict[str, dict[str, str]]
    default_locale: str
    description: str | None
    version: int
    created_at: str
    updated_at: str


class TemplatePage(BaseModel):
    items: list[Template]
    next_cursor: str | None


class PreviewIn(Strict):
    data: dict[str, Any] = Field(default_factory=dict, description="Sample send `data`.")
    user: dict[str, Any] = Field(
        default_factory=dict, description="Sample recipient profile (name, email, locale, ...)."
    )
    notification: dict[str, Any] = Field(
        default_factory=dict, description="Sample notification fields (title, type, ...)."
    )
    locale: Locale | None = Field(
        default=None, description="The recipient's locale; falls back as on send."
    )


class Preview(BaseModel):
    key: str
    locale: str = Field(description="The locale variant that was rendered.")
    parts: dict[str, str]
    channels: dict[str, dict[str, str]]


@router.post("", status_code=201, response_model=Template)
async def create_template(body: TemplateIn, services: ServicesDep, _server: ServerDep) -> Json:
    """Store a template; 409 if the key exists, 422 ``template_invalid`` if it does not compile."""
    created = await services.templates.create(body.key, body.draft())
    return Json(created, status_code=201)


@router.get("", response_model=TemplatePage)
async def list_templates(
    services: ServicesDep,
    _server: ServerDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=cursors.MAX_CURSOR)] = None,
) -> Json:
    """Templates ordered by key; pass ``next_cursor`` back as ``cursor`` for more."""
    after = cursors.decode("t", cursor) if cursor else None
    return Json(paged(await services.templates.list(limit=limit, cursor=after), "t"))


@router.get("/{key}", response_model=Template)
async def get_template(key: KeyPath, services: ServicesDep, _server: ServerDep) -> Json:
    return Json(await services.templates.get(key))


@router.put("/{key}", response_model=Template)
async def replace_template(
    key: KeyPath, body: TemplateContent, services: ServicesDep, _server: ServerDep
) -> Json:
    """Replace a template's kind, bodies and default locale (recompiled; version + 1)."""
    return Json(await services.templates.replace(key, body.draft()))


@router.delete("/{key}", status_code=204, response_class=Response)
async def delete_template(key: KeyPath, services: ServicesDep, _server: ServerDep) -> Response:
    await services.templates.delete(key)
    return Response(status_code=204)


@router.post("/{key}/preview", response_model=Preview)
async def preview_template(
    key: KeyPath, body: PreviewIn, services: ServicesDep, _server: ServerDep
) -> Json:
    """Render every part with sample data; a render failure is 422 ``template_invalid``."""
    rendered = await services.templates.render_variant(
        key, locale=body.locale, data=body.data, user=body.user, notification=body.notification
    )
    return Json(
        {
            "key": key,
            "locale": rendered.locale,
            "parts": rendered.parts,
            "channels": rendered.by_channel(),
        }
    )
