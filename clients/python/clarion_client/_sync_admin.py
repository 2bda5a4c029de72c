# Generated from _async_admin.py by scripts/unasync.py: edit that file, not this one.
"""The async client's configuration and operator operations: templates, webhook endpoints,
A/B experiments, analytics and conversions, system status, one-click unsubscribe.
``_sync_admin.py`` is generated from this file by ``scripts/unasync.py``: edit this one."""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from clarion_client._core import Call, body, nothing, operation, seg, text
from clarion_client._sse import SseDecoder, loads_or_none
from clarion_client._sync_base import Pager
from clarion_client._sync_resources import Resource
from clarion_client.enums import DeliveryChannel, NotificationTemplate, NotificationType
from clarion_client.errors import error_from_response
from clarion_client.models import (
    Conversion,
    Dashboard,
    Experiment,
    ExperimentResults,
    HealthScore,
    LiveCounters,
    Page,
    SystemStatus,
    Template,
    TemplatePreview,
    Trends,
    UserMetrics,
    Webhook,
    WebhookCreated,
)

N = "/api/v1/notifications"
A = f"{N}/analytics"
X = f"{N}/ab-tests"
T = "/api/v1/templates"
W = "/api/v1/webhooks"


class Templates(Resource):
    @operation("POST", T)
    def create(
        self,
        key: str,
        bodies: Mapping[str, Mapping[str, str]],
        *,
        kind: NotificationTemplate | str | None = None,
        default_locale: str | None = None,
        description: str | None = None,
    ) -> Template:
        """Store a template: per locale, the Jinja2 body of each part (docs/templates.md)."""
        payload = body(
            key=key,
            kind=kind,
            bodies=bodies,
            default_locale=default_locale,
            description=description,
        )
        return self._t.request(Call("POST", T, Template.model_validate, json=payload))

    @operation("GET", T)
    def list(self, *, limit: int | None = None, cursor: str | None = None) -> Pager[Template]:
        def page(after: str | None) -> Call[Page[Template]]:
            query = {"limit": limit, "cursor": after}
            return Call("GET", T, Page[Template].model_validate, params=query, idempotent=True)

        return Pager(self._t, page, cursor=cursor)

    @operation("GET", f"{T}/{{key}}")
    def get(self, key: str) -> Template:
        path = f"{T}/{seg(key)}"
        return self._t.request(Call("GET", path, Template.model_validate, idempotent=True))

    @operation("PUT", f"{T}/{{key}}")
    def replace(
        self,
        key: str,
        bodies: Mapping[str, Mapping[str, str]],
        *,
        kind: NotificationTemplate | str | None = None,
        default_locale: str | None = None,
        description: str | None = None,
    ) -> Template:
        payload = body(
            kind=kind, bodies=bodies, default_locale=default_locale, description=description
        )
        path = f"{T}/{seg(key)}"
        return self._t.request(
            Call("PUT", path, Template.model_validate, json=payload, idempotent=True)
        )

    @operation("DELETE", f"{T}/{{key}}")
    def delete(self, key: str) -> None:
        self._t.request(Call("DELETE", f"{T}/{seg(key)}", nothing, idempotent=True))

    @operation("POST", f"{T}/{{key}}/preview")
    def preview(
        self,
        key: str,
        *,
        data: Mapping[str, Any] | None = None,
        user: Mapping[str, Any] | None = None,
        notification: Mapping[str, Any] | None = None,
        locale: str | None = None,
    ) -> TemplatePreview:
        """Render every part with sample data; changes nothing."""
        payload = body(data=data, user=user, notification=notification, locale=locale)
        path = f"{T}/{seg(key)}/preview"
        return self._t.request(
            Call("POST", path, TemplatePreview.model_validate, json=payload, idempotent=True)
        )


class Webhooks(Resource):
    @operation("POST", W)
    def create(
        self,
        url: str,
        *,
        user_id: str | None = None,
        types: Sequence[NotificationType | str] | None = None,
        description: str | None = None,
    ) -> WebhookCreated:
        """Register an endpoint; the answer holds its signing ``secret``, shown only once."""
        payload = body(
            url=url,
            user_id=user_id,
            types=None if types is None else list(types),
            description=description,
        )
        return self._t.request(Call("POST", W, WebhookCreated.model_validate, json=payload))

    @operation("GET", W)
    def list(self) -> builtins.list[Webhook]:
        page = self._t.request(Call("GET", W, Page[Webhook].model_validate, idempotent=True))
        return page.items

    @operation("GET", f"{W}/{{endpoint_id}}")
    def get(self, endpoint_id: str) -> Webhook:
        path = f"{W}/{seg(endpoint_id)}"
        return self._t.request(Call("GET", path, Webhook.model_validate, idempotent=True))

    @operation("DELETE", f"{W}/{{endpoint_id}}")
    def delete(self, endpoint_id: str) -> None:
        self._t.request(Call("DELETE", f"{W}/{seg(endpoint_id)}", nothing, idempotent=True))


class Experiments(Resource):
    @operation("POST", X)
    def create(self, name: str, variants: Sequence[Mapping[str, Any]], **config: Any) -> Experiment:
        """A draft experiment (``target_type`` or ``target_template``, ``holdout``,
        ``metric``, ``baseline``, ``mde``, ... as in docs/experiments.md)."""
        payload = body(name=name, variants=[body(**v) for v in variants], **config)
        return self._t.request(Call("POST", X, Experiment.model_validate, json=payload))

    @operation("GET", X)
    def list(
        self, *, status: str | None = None, limit: int | None = None
    ) -> builtins.list[Experiment]:
        params = {"status": status, "limit": limit}
        page = self._t.request(
            Call("GET", X, Page[Experiment].model_validate, params=params, idempotent=True)
        )
        return page.items

    @operation("GET", f"{X}/{{experiment_id}}")
    def get(self, experiment_id: str) -> Experiment:
        path = f"{X}/{seg(experiment_id)}"
        return self._t.request(Call("GET", path, Experiment.model_validate, idempotent=True))

    @operation("PATCH", f"{X}/{{experiment_id}}")
    def update(self, experiment_id: str, **changes: Any) -> Experiment:
        if "variants" in changes:
            changes["variants"] = [body(**v) for v in changes["variants"]]
        path = f"{X}/{seg(experiment_id)}"
        return self._t.request(
            Call("PATCH", path, Experiment.model_validate, json=body(**changes), idempotent=True)
        )

    @operation("DELETE", f"{X}/{{experiment_id}}")
    def delete(self, experiment_id: str) -> None:
        self._t.request(Call("DELETE", f"{X}/{seg(experiment_id)}", nothing))

    def _transition(self, experiment_id: str, action: str, payload: Any = None) -> Experiment:
        path = f"{X}/{seg(experiment_id)}/{action}"
        return self._t.request(Call("POST", path, Experiment.model_validate, json=payload))

    @operation("POST", f"{X}/{{experiment_id}}/start")
    def start(self, experiment_id: str) -> Experiment:
        return self._transition(experiment_id, "start")

    @operation("POST", f"{X}/{{experiment_id}}/pause")
    def pause(self, experiment_id: str) -> Experiment:
        return self._transition(experiment_id, "pause")

    @operation("POST", f"{X}/{{experiment_id}}/stop")
    def stop(self, experiment_id: str) -> Experiment:
        return self._transition(experiment_id, "stop")

    @operation("POST", f"{X}/{{experiment_id}}/promote")
    def promote(self, experiment_id: str, variant: str) -> Experiment:
        """The variant takes all traffic."""
        return self._transition(experiment_id, "promote", {"variant": variant})

    @operation("GET", f"{X}/{{experiment_id}}/results")
    def results(self, experiment_id: str) -> ExperimentResults:
        path = f"{X}/{seg(experiment_id)}/results"
        return self._t.request(Call("GET", path, ExperimentResults.model_validate, idempotent=True))


def _range(start: datetime | str | None, to: datetime | str | None) -> dict[str, Any]:
    return {"from": start, "to": to}


class Analytics(Resource):
    @operation("GET", f"{A}/dashboard")
    def dashboard(
        self, *, start: datetime | str | None = None, to: datetime | str | None = None
    ) -> Dashboard:
        call = Call(
            "GET",
            f"{A}/dashboard",
            Dashboard.model_validate,
            params=_range(start, to),
            idempotent=True,
        )
        return self._t.request(call)

    @operation("GET", f"{A}/metrics/{{user_id}}")
    def user_metrics(
        self,
        user_id: str,
        *,
        start: datetime | str | None = None,
        to: datetime | str | None = None,
    ) -> UserMetrics:
        path = f"{A}/metrics/{seg(user_id)}"
        return self._t.request(
            Call("GET", path, UserMetrics.model_validate, params=_range(start, to), idempotent=True)
        )

    @operation("GET", f"{A}/health-score")
    def health_score(self, *, window: str | None = None) -> HealthScore:
        call = Call(
            "GET",
            f"{A}/health-score",
            HealthScore.model_validate,
            params={"window": window},
            idempotent=True,
        )
        return self._t.request(call)

    @operation("GET", f"{A}/trends")
    def trends(
        self,
        metric: str,
        *,
        interval: str | None = None,
        start: datetime | str | None = None,
        to: datetime | str | None = None,
        type: NotificationType | str | None = None,
        channel: DeliveryChannel | str | None = None,
    ) -> Trends:
        params = {
            "metric": metric,
            "interval": interval,
            **_range(start, to),
            "type": type,
            "channel": channel,
        }
        call = Call("GET", f"{A}/trends", Trends.model_validate, params=params, idempotent=True)
        return self._t.request(call)

    @operation("GET", f"{A}/events")
    def events(
        self,
        *,
        start: datetime | str | None = None,
        to: datetime | str | None = None,
        event: str | None = None,
        type: NotificationType | str | None = None,
        channel: DeliveryChannel | str | None = None,
        user_id: str | None = None,
        format: str = "ndjson",
    ) -> builtins.list[dict[str, Any]] | str:
        """Raw events in time order: a list of objects (``ndjson``), or the ``csv`` text."""
        params = {
            **_range(start, to),
            "event": event,
            "type": type,
            "channel": channel,
            "user_id": user_id,
            "format": format,
        }
        parse = _ndjson if format == "ndjson" else text
        call: Call[Any] = Call(
            "GET", f"{A}/events", parse, params=params, raw=True, idempotent=True
        )
        result: builtins.list[dict[str, Any]] | str = self._t.request(call)
        return result

    @operation("GET", f"{A}/live")
    def live(self, *, seconds: int | None = None) -> Iterator[LiveCounters]:
        """One set of counters a second, for ``seconds`` (at most 3,600)."""
        params = {"seconds": seconds} if seconds is not None else None
        with self._t.http.stream(
            "GET", self._t.url(f"{A}/live"), params=params, headers=self._t.headers(), timeout=None
        ) as response:
            if response.status_code >= 400:
                response.read()
                raise error_from_response(response.status_code, loads_or_none(response.text))
            decoder = SseDecoder()
            for line in response.iter_lines():
                for event, data in decoder.feed(line):
                    if event == "counters":
                        yield LiveCounters.model_validate_json(data)

    @operation("POST", f"{N}/{{notification_id}}/conversions")
    def convert_notification(
        self, notification_id: int, *, name: str | None = None, value: float | None = None
    ) -> Conversion:
        """The notification led to its outcome; once per (notification, name)."""
        path = f"{N}/{seg(notification_id)}/conversions"
        return self._t.request(
            Call(
                "POST",
                path,
                Conversion.model_validate,
                json=body(name=name, value=value),
                idempotent=True,
            )
        )

    @operation("POST", "/api/v1/users/{user_id}/conversions")
    def convert_user(
        self, user_id: str, *, name: str | None = None, value: float | None = None
    ) -> Conversion:
        """The user converted: credited to the latest notification within the window."""
        path = f"/api/v1/users/{seg(user_id)}/conversions"
        return self._t.request(
            Call("POST", path, Conversion.model_validate, json=body(name=name, value=value))
        )


def _ndjson(payload: str) -> builtins.list[dict[str, Any]]:
    return [json.loads(line) for line in payload.splitlines() if line.strip()]


class System(Resource):
    @operation("GET", f"{N}/system/status")
    def status(self) -> SystemStatus:
        call = Call("GET", f"{N}/system/status", SystemStatus.model_validate, idempotent=True)
        return self._t.request(call)


class Unsubscribe(Resource):
    """The signed one-click links of emails (no credentials needed)."""

    @operation("POST", "/api/v1/unsubscribe/{token}")
    def confirm(self, token: str) -> dict[str, Any]:
        path = f"/api/v1/unsubscribe/{seg(token)}"
        return self._t.request(Call("POST", path, dict, idempotent=True))

    @operation("GET", "/api/v1/unsubscribe/{token}")
    def page(self, token: str) -> str:
        """The HTML page a person sees when following the link."""
        path = f"/api/v1/unsubscribe/{seg(token)}"
        return self._t.request(Call("GET", path, text, raw=True, idempotent=True))
