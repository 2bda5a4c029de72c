"""``/api/v1/notifications/ab-tests``: A/B experiments on notifications — configure,
start, pause, stop, promote a variant, and read the results (docs/experiments.md). API keys
only: ``read`` reads, ``admin`` changes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import Field

from clarion.api.deps import ServerDep, ServicesDep
from clarion.api.responses import Json
from clarion.api.routes import ERROR_RESPONSES
from clarion.api.schemas import Strict, TypeName
from clarion.domain.types import ChannelName, Priority, TemplateKind

router = APIRouter(
    prefix="/api/v1/notifications/ab-tests", tags=["experiments"], responses=ERROR_RESPONSES
)

ExperimentId = Annotated[str, Path(min_length=36, max_length=36, pattern=r"^[0-9a-f\-]{36}$")]
Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]


class VariantIn(Strict):
    key: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,49}$")]
    weight: Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)]
    title: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    message: Annotated[str, Field(max_length=4000)] | None = None
    template: TemplateKind | None = None
    content: dict[str, Any] | None = None
    template_key: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    channels: Annotated[list[ChannelName], Field(min_length=1, max_length=7)] | None = None
    priority: Priority | None = None
    delay_seconds: Annotated[float, Field(ge=0, le=604800, allow_inf_nan=False)] | None = None


Metric = Literal["read", "clicked", "converted"]
Guardrail = Literal["opt_out", "delivery_failure"]


class ExperimentIn(Strict):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    target_type: TypeName | None = None
    target_template: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    variants: Annotated[list[VariantIn], Field(min_length=2, max_length=10)]
    holdout: Annotated[float, Field(ge=0, le=50, allow_inf_nan=False)] = 0.0
    metric: Metric = "read"
    guardrails: list[Guardrail] = ["opt_out", "delivery_failure"]
    baseline: Annotated[float, Field(ge=0.0001, le=0.9999)] = 0.1
    mde: Annotated[float, Field(ge=0.001, le=10)] = 0.1
    alpha: Annotated[float, Field(ge=0.0001, le=0.2)] = 0.05
    power: Annotated[float, Field(ge=0.5, le=0.99)] = 0.8
    auto_winner: bool = False
    holdout_after_winner: Literal["keep", "end"] = "keep"


class ExperimentPatch(Strict):
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    target_type: TypeName | None = None
    target_template: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    variants: Annotated[list[VariantIn], Field(min_length=2, max_length=10)] | None = None
    holdout: Annotated[float, Field(ge=0, le=50, allow_inf_nan=False)] | None = None
    metric: Metric | None = None
    guardrails: list[Guardrail] | None = None
    baseline: Annotated[float, Field(ge=0.0001, le=0.9999)] | None = None
    mde: Annotated[float, Field(ge=0.001, le=10)] | None = None
    alpha: Annotated[float, Field(ge=0.0001, le=0.2)] | None = None
    power: Annotated[float, Field(ge=0.5, le=0.99)] | None = None
    auto_winner: bool | None = None
    holdout_after_winner: Literal["keep", "end"] | None = None


class PromoteIn(Strict):
    variant: Annotated[str, Field(min_length=1, max_length=50)]


def _body(model: Strict) -> dict[str, Any]:
    out = model.model_dump(mode="json", exclude_none=True)
    if "variants" in out:
        out["variants"] = [{k: v for k, v in x.items() if v is not None} for x in out["variants"]]
    return out


@router.post("", status_code=201)
async def create_experiment(body: ExperimentIn, services: ServicesDep, _server: ServerDep) -> Json:
    """A draft experiment with its planned sample size; ``start`` it to assign users."""
    return Json(await services.experiments.create(_body(body)), status_code=201)


@router.get("")
async def list_experiments(
    services: ServicesDep,
    _server: ServerDep,
    status: Annotated[
        Literal["draft", "running", "paused", "stopped", "completed"] | None, Query()
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
) -> Json:
    """Experiments, newest first."""
    return Json({"items": await services.experiments.list_all(status, limit)})


@router.get("/{experiment_id}")
async def get_experiment(
    experiment_id: ExperimentId, services: ServicesDep, _server: ServerDep
) -> Json:
    return Json(await services.experiments.get(experiment_id))


@router.patch("/{experiment_id}")
async def update_experiment(
    experiment_id: ExperimentId, body: ExperimentPatch, services: ServicesDep, _server: ServerDep
) -> Json:
    """A draft changes anything; a running or paused one its name, weights, holdout and
    automatic winner (assigned users keep their variant)."""
    return Json(await services.experiments.update(experiment_id, _body(body)))


@router.delete("/{experiment_id}", status_code=204)
async def delete_experiment(
    experiment_id: ExperimentId, services: ServicesDep, _server: ServerDep
) -> Response:
    """A draft, stopped or completed experiment, with its assignments."""
    await services.experiments.delete(experiment_id)
    return Response(status_code=204)


@router.post("/{experiment_id}/start")
async def start_experiment(
    experiment_id: ExperimentId, services: ServicesDep, _server: ServerDep
) -> Json:
    return Json(await services.experiments.transition(experiment_id, "start"))


@router.post("/{experiment_id}/pause")
async def pause_experiment(
    experiment_id: ExperimentId, services: ServicesDep, _server: ServerDep
) -> Json:
    return Json(await services.experiments.transition(experiment_id, "pause"))


@router.post("/{experiment_id}/stop")
async def stop_experiment(
    experiment_id: ExperimentId, services: ServicesDep, _server: ServerDep
) -> Json:
    return Json(await services.experiments.transition(experiment_id, "stop"))


@router.post("/{experiment_id}/promote")
async def promote_variant(
    experiment_id: ExperimentId, body: PromoteIn, services: ServicesDep, _server: ServerDep
) -> Json:
    """The variant takes all traffic (the holdout is kept or ended as configured)."""
    return Json(await services.experiments.transition(experiment_id, "promote", body.variant))


@router.get("/{experiment_id}/results")
async def experiment_results(
    experiment_id: ExperimentId, services: ServicesDep, _server: ServerDep
) -> Json:
    """Per variant: users, outcomes, rate, lift, confidence interval and sequence,
    p-values (fixed and always-valid, Holm-adjusted), probability to beat control,
    guardrails; the sample-ratio check and the verdict."""
    return Json(await services.experiments.decide(experiment_id))
