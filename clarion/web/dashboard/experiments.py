"""Experiments: the list, creating one (its JSON body, as the API takes it), and each
one's results with intervals, verdict, SRM and guardrails; start, pause, stop, promote."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from clarion.domain.types import ExperimentStatus
from clarion.errors import ValidationFailed
from clarion.services.dashboard import DashSession
from clarion.services.experiments import TRANSITIONS
from clarion.web.dashboard.render import render
from clarion.web.dashboard.session import services_of

EXAMPLE = {
    "name": "Shorter sale title",
    "target_type": "sale",
    "variants": [
        {"key": "control", "weight": 50},
        {"key": "short", "weight": 50, "title": "Sale: 30% off"},
    ],
    "holdout": 10,
    "metric": "read",
    "baseline": 0.2,
    "mde": 0.2,
}
ACTIONS = tuple(TRANSITIONS)
#: Which actions each status allows (as the experiment service enforces them); only these
#: buttons are shown.
ALLOWED = {
    status: tuple(action for action, froms in TRANSITIONS.items() if status in froms)
    for status in ExperimentStatus
}


async def experiments(request: Request, session: DashSession) -> Response:
    rows = await services_of(request).experiments.list_all(None, 200)
    return render(
        request,
        "experiments.html",
        session=session,
        active="experiments",
        rows=rows,
        example=json.dumps(EXAMPLE, indent=2),
        error=None,
    )


async def create(request: Request, session: DashSession) -> Response:
    services = services_of(request)
    text = request.state.form.get("body", "")
    try:
        body = json.loads(text)
        if not isinstance(body, dict):
            raise ValueError("a JSON object")
        made = await services.experiments.create(body)
    except (ValueError, ValidationFailed) as exc:
        message = exc.message if isinstance(exc, ValidationFailed) else f"not JSON: {exc}"
        details = exc.details if isinstance(exc, ValidationFailed) else None
        rows = await services.experiments.list_all(None, 200)
        return render(
            request,
            "experiments.html",
            422,
            session=session,
            active="experiments",
            rows=rows,
            example=text,
            error={"message": message, "details": details},
        )
    await services.dashboard.audit(
        api_key_id=session.api_key_id,
        via="dashboard",
        action="experiment.create",
        target=f"experiment:{made['id']}",
        after=made,
    )
    return RedirectResponse(f"/dashboard/experiments/{made['id']}", status_code=303)


async def detail(request: Request, session: DashSession) -> Response:
    got = await services_of(request).experiments.results(request.path_params["id"])
    allowed = ALLOWED[ExperimentStatus(got["experiment"]["status"])]
    return render(
        request, "experiment.html", session=session, active="experiments", r=got, actions=allowed
    )


async def transition(request: Request, session: DashSession) -> Response:
    services = services_of(request)
    experiment_id = request.path_params["id"]
    form: dict[str, Any] = request.state.form
    action = form.get("action", "")
    if action not in ACTIONS:
        raise ValidationFailed("unknown action", [{"field": "action", "problem": "unknown"}])
    before = await services.experiments.get(experiment_id)
    after = await services.experiments.transition(
        experiment_id, action, form.get("variant") or None
    )
    await services.dashboard.audit(
        api_key_id=session.api_key_id,
        via="dashboard",
        action=f"experiment.{action}",
        target=f"experiment:{experiment_id}",
        before={"status": before["status"], "winner": before["winner"]},
        after={"status": after["status"], "winner": after["winner"]},
    )
    return RedirectResponse(f"/dashboard/experiments/{experiment_id}", status_code=303)
