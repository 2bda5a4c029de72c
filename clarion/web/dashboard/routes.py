"""Installs the dashboard's routes on the app (called by the composition root)."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from clarion.web.dashboard import (
    access,
    audit,
    dead_letters,
    experiments,
    notifications,
    overview,
    system,
    templates_page,
    users,
)
from clarion.web.dashboard.render import HERE
from clarion.web.dashboard.session import guarded

#: The dashboard's paths (none is part of the API).
PAGES = {
    "/dashboard": overview.overview,
    "/dashboard/live": overview.live,
    "/dashboard/notifications": notifications.search,
    "/dashboard/notifications/{id}": notifications.story,
    "/dashboard/dead-letters": dead_letters.dead_letters,
    "/dashboard/experiments": experiments.experiments,
    "/dashboard/experiments/{id}": experiments.detail,
    "/dashboard/templates": templates_page.templates,
    "/dashboard/templates/{key}": templates_page.edit,
    "/dashboard/users": users.find,
    "/dashboard/users/{user_id}": users.user,
    "/dashboard/users/{user_id}/erase": users.erase_form,
    "/dashboard/system": system.system,
    "/dashboard/audit": audit.audit,
    "/dashboard/audit/export": audit.export,
}
ACTIONS = {
    "/dashboard/dead-letters/retry": dead_letters.retry,
    "/dashboard/experiments": experiments.create,
    "/dashboard/experiments/{id}/transition": experiments.transition,
    "/dashboard/templates/{key}": templates_page.save,
    "/dashboard/users/{user_id}/test": users.send_test,
    "/dashboard/users/{user_id}/erase": users.erase,
}


def install(app: FastAPI) -> None:
    app.add_route("/dashboard/login", access.login_form, methods=["GET"], include_in_schema=False)
    app.add_route("/dashboard/login", access.login, methods=["POST"], include_in_schema=False)
    app.add_route(
        "/dashboard/logout",
        guarded(access.logout, write=False),
        methods=["POST"],
        include_in_schema=False,
    )
    app.add_route(
        "/dashboard/templates/{key}/preview",
        guarded(templates_page.preview, write=False),
        methods=["POST"],
        include_in_schema=False,
    )
    for path, view in PAGES.items():
        app.add_route(path, guarded(view), methods=["GET"], include_in_schema=False)
    for path, view in ACTIONS.items():
        app.add_route(path, guarded(view), methods=["POST"], include_in_schema=False)
    app.mount("/dashboard/static", StaticFiles(directory=HERE / "static"), name="dashboard")
