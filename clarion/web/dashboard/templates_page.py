"""Templates: the list, and editing one with a live preview per channel and locale (the
same compile and render as the preview API), compile errors shown in place."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from clarion.domain.rendering import choose_locale, render, template_variables
from clarion.domain.types import TemplateKind
from clarion.errors import TemplateInvalid, ValidationFailed
from clarion.services.dashboard import DashSession
from clarion.services.templates import Rendered, TemplateDraft, compile_all
from clarion.web.dashboard.render import render as page
from clarion.web.dashboard.session import services_of

SAMPLE = {"data": {"name": "Ana", "count": 3}, "user": {"name": "Ana", "locale": "en"}}


def _json_field(form: dict[str, str], name: str) -> Any:
    try:
        return json.loads(form.get(name) or "{}")
    except ValueError as exc:
        raise ValidationFailed(f"{name} is not JSON: {exc}", [{"field": name}]) from exc


def draft_of(form: dict[str, str]) -> TemplateDraft:
    bodies = _json_field(form, "bodies")
    if not isinstance(bodies, dict):
        raise ValidationFailed("bodies must map locales to parts", [{"field": "bodies"}])
    try:
        kind = TemplateKind(form.get("kind", "simple"))
    except ValueError as exc:
        raise ValidationFailed("unknown kind", [{"field": "kind"}]) from exc
    return TemplateDraft(kind, bodies, form.get("default_locale") or "en", form.get("description"))


async def preview_of(draft: TemplateDraft, sample: Any, locale: str | None) -> Rendered:
    """Compile the draft and render it for the sample, as the preview API does."""
    compiled = await asyncio.to_thread(compile_all, draft)
    chosen = choose_locale(compiled, locale or None, default=draft.default_locale)
    sample = sample if isinstance(sample, dict) else {}
    variables = template_variables(
        data=sample.get("data"), user=sample.get("user"), notification=sample.get("notification")
    )
    parts = await asyncio.to_thread(render, compiled[chosen], variables)
    return Rendered(key="draft", locale=chosen, parts=parts)


async def templates(request: Request, session: DashSession) -> Response:
    got = await services_of(request).templates.list(limit=100)
    return page(request, "templates.html", session=session, active="templates", rows=got["items"])


def _editor(
    request: Request,
    session: DashSession,
    form: dict[str, str],
    preview: Rendered | None,
    error: ValidationFailed | None,
    status: int = 200,
) -> Response:
    fragment = request.headers.get("x-dashboard-fragment") == "preview"
    return page(
        request,
        "preview.html" if fragment else "template.html",
        status,
        session=session,
        active="templates",
        key=request.path_params["key"],
        form=form,
        kinds=[k.value for k in TemplateKind],
        preview=preview.by_channel() if preview else None,
        locale=preview.locale if preview else None,
        error=error,
    )


async def edit(request: Request, session: DashSession) -> Response:
    row = await services_of(request).templates.get(request.path_params["key"])
    form = {
        "kind": row["kind"],
        "bodies": json.dumps(row["bodies"], indent=2, ensure_ascii=False),
        "default_locale": row["default_locale"],
        "description": row["description"] or "",
        "sample": json.dumps(SAMPLE, indent=2),
        "locale": "",
        "version": str(row["version"]),
    }
    shown = await preview_of(draft_of(form), SAMPLE, None)
    return _editor(request, session, form, shown, None)


async def preview(request: Request, session: DashSession) -> Response:
    """The draft in the form rendered, nothing stored (a read: a read-only session may)."""
    form: dict[str, str] = request.state.form
    try:
        shown = await preview_of(draft_of(form), _json_field(form, "sample"), form.get("locale"))
    except ValidationFailed as exc:
        return _editor(request, session, form, None, exc, 422)
    return _editor(request, session, form, shown, None)


async def save(request: Request, session: DashSession) -> Response:
    services = services_of(request)
    key = request.path_params["key"]
    form: dict[str, str] = request.state.form
    before = await services.templates.get(key)
    try:
        draft = draft_of(form)
        after = await services.templates.replace(key, draft)
    except (ValidationFailed, TemplateInvalid) as exc:
        return _editor(request, session, form, None, exc, 422)
    await services.dashboard.audit(
        api_key_id=session.api_key_id,
        via="dashboard",
        action="template.replace",
        target=f"template:{key}",
        before=before,
        after=after,
    )
    return RedirectResponse(f"/dashboard/templates/{key}?saved={after['version']}", 303)
