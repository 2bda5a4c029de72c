"""An A/B experiment's configuration and what a variant changes in a send
(docs/experiments.md). Pure: validated here, stored as JSON by the service.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from clarion.domain.content import validate_content
from clarion.domain.experiment_assignment import HOLDOUT
from clarion.domain.send_command import SendCommand
from clarion.domain.types import ChannelName, ExperimentStatus, Priority, TemplateKind
from clarion.errors import Conflict, ValidationFailed

METRICS = ("read", "clicked", "converted")
GUARDRAILS = ("opt_out", "delivery_failure")
STATUSES = tuple(ExperimentStatus)
#: Statuses in which an experiment decides what its target's sends get.
LIVE = tuple(s for s in ExperimentStatus if s.live)
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,49}$")
#: What a variant may change in a send.
OVERRIDES = (
    "title",
    "message",
    "template",
    "content",
    "template_key",
    "channels",
    "priority",
    "delay_seconds",
)


class ExperimentInvalid(ValueError):
    """Bad configuration; ``problems`` lists ``{"field", "problem"}``."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{p['field']}: {p['problem']}" for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class Variant:
    key: str
    weight: float  # percent of the traffic outside the holdout
    overrides: Mapping[str, Any] = field(default_factory=dict)

    @property
    def delay_seconds(self) -> float:
        return float(self.overrides.get("delay_seconds") or 0)

    @cached_property
    def changes(self) -> dict[str, Any]:
        """The fields of a send this variant sets, as the send's values (see ``apply``)."""
        o = self.overrides
        out: dict[str, Any] = {}
        if "title" in o:
            out["title"] = o["title"]
        if "message" in o:
            out["message"] = o["message"]
        if "template" in o:
            out["template"] = TemplateKind(o["template"])
        if "content" in o:
            out["content"] = dict(o["content"])
        if "template_key" in o:
            out["template_key"] = o["template_key"]
        if "channels" in o:
            out["channels"] = tuple(ChannelName(c) for c in o["channels"])
        if "priority" in o:
            out["priority"] = Priority(o["priority"])
        return out


@dataclass(frozen=True)
class ExperimentConfig:
    variants: tuple[Variant, ...]  # the first is the control
    holdout: float = 0.0  # percent of users who receive nothing
    metric: str = "read"
    guardrails: tuple[str, ...] = GUARDRAILS
    baseline: float = 0.1  # the control's expected rate, for the planned size
    mde: float = 0.1  # the smallest relative lift worth detecting
    alpha: float = 0.05
    power: float = 0.8
    auto_winner: bool = False
    holdout_after_winner: Literal["keep", "end"] = "keep"

    @property
    def control(self) -> str:
        return self.variants[0].key

    def variant(self, key: str) -> Variant | None:
        return next((v for v in self.variants if v.key == key), None)

    def weights(self) -> list[tuple[str, float]]:
        return [(v.key, v.weight) for v in self.variants]

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["variants"] = [
            {"key": v.key, "weight": v.weight, **dict(v.overrides)} for v in self.variants
        ]
        out["guardrails"] = list(self.guardrails)
        return out

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ExperimentConfig:
        """Validate a configuration (the API's body, or a stored one)."""
        problems: list[dict[str, str]] = []
        raw = doc.get("variants")
        variants: list[Variant] = []
        if not isinstance(raw, list) or not 2 <= len(raw) <= 10:
            problems.append({"field": "variants", "problem": "2 to 10 variants"})
            raw = raw if isinstance(raw, list) else []
        keys: set[str] = set()
        for i, v in enumerate(raw):
            where = f"variants[{i}]"
            if not isinstance(v, Mapping):
                problems.append({"field": where, "problem": "an object"})
                continue
            key = v.get("key")
            if not isinstance(key, str) or not _KEY.match(key) or key == HOLDOUT:
                problems.append(
                    {"field": f"{where}.key", "problem": "1-50 letters, digits, _ . -; not holdout"}
                )
                continue
            if key in keys:
                problems.append({"field": f"{where}.key", "problem": f"{key!r} twice"})
            keys.add(key)
            weight = v.get("weight")
            if not isinstance(weight, int | float) or isinstance(weight, bool) or weight <= 0:
                problems.append({"field": f"{where}.weight", "problem": "a positive percent"})
                weight = 0
            over = {k: v[k] for k in OVERRIDES if v.get(k) is not None}
            problems += _check_overrides(where, over)
            unknown = set(v) - {"key", "weight", *OVERRIDES}
            if unknown:
                problems.append({"field": where, "problem": f"unknown {sorted(unknown)}"})
            variants.append(Variant(key, float(weight), over))
        if variants and abs(sum(v.weight for v in variants) - 100.0) > 1e-6:
            problems.append({"field": "variants", "problem": "weights must sum to 100"})
        holdout = _number(doc, "holdout", 0.0, 0.0, 50.0, problems)
        metric = doc.get("metric", "read")
        if metric not in METRICS:
            problems.append({"field": "metric", "problem": f"one of {', '.join(METRICS)}"})
        guards = doc.get("guardrails", list(GUARDRAILS))
        if not isinstance(guards, list) or any(g not in GUARDRAILS for g in guards):
            problems.append(
                {"field": "guardrails", "problem": f"a list of {', '.join(GUARDRAILS)}"}
            )
            guards = []
        baseline = _number(doc, "baseline", 0.1, 0.0001, 0.9999, problems)
        mde = _number(doc, "mde", 0.1, 0.001, 10.0, problems)
        alpha = _number(doc, "alpha", 0.05, 0.0001, 0.2, problems)
        power = _number(doc, "power", 0.8, 0.5, 0.99, problems)
        after = doc.get("holdout_after_winner", "keep")
        if after not in ("keep", "end"):
            problems.append({"field": "holdout_after_winner", "problem": "keep or end"})
        auto = doc.get("auto_winner", False)
        if not isinstance(auto, bool):
            problems.append({"field": "auto_winner", "problem": "true or false"})
        if problems:
            raise ExperimentInvalid(problems)
        return cls(
            variants=tuple(variants),
            holdout=holdout,
            metric=str(metric),
            guardrails=tuple(str(g) for g in guards),
            baseline=baseline,
            mde=mde,
            alpha=alpha,
            power=power,
            auto_winner=bool(auto),
            holdout_after_winner=after,
        )


def _number(
    doc: Mapping[str, Any],
    name: str,
    default: float,
    low: float,
    high: float,
    problems: list[dict[str, str]],
) -> float:
    value = doc.get(name, default)
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not low <= float(value) <= high
    ):
        problems.append({"field": name, "problem": f"a number from {low:g} to {high:g}"})
        return default
    return float(value)


def _check_overrides(where: str, over: Mapping[str, Any]) -> list[dict[str, str]]:
    problems = []

    def bad(name: str, problem: str) -> None:
        problems.append({"field": f"{where}.{name}", "problem": problem})

    for name in ("title", "message", "template_key"):
        if name in over and not isinstance(over[name], str):
            bad(name, "a string")
    if "title" in over and isinstance(over["title"], str) and not 0 < len(over["title"]) <= 200:
        bad("title", "1 to 200 characters")
    if "template" in over and over["template"] not in {str(k) for k in TemplateKind}:
        bad("template", "a template kind")
    if "priority" in over and over["priority"] not in {str(p) for p in Priority}:
        bad("priority", "low, normal, high or urgent")
    if "channels" in over:
        chans = over["channels"]
        names = {str(c) for c in ChannelName}
        if not isinstance(chans, list) or not chans or any(c not in names for c in chans):
            bad("channels", "a non-empty list of channels")
    if "content" in over and not isinstance(over["content"], Mapping):
        bad("content", "an object")
    if "delay_seconds" in over:
        d = over["delay_seconds"]
        if not isinstance(d, int | float) or isinstance(d, bool) or not 0 <= d <= 7 * 86400:
            bad("delay_seconds", "0 to 604800 seconds")
    return problems


def apply(cmd: SendCommand, variant: Variant) -> SendCommand:
    """The send as ``variant`` makes it (its delay is applied by the planner)."""
    changes = variant.changes
    return cmd.replaced(changes) if changes else cmd


#: Overrides after which a send's in-app content is the send's own but for its title and
#: message.
_SAME_CONTENT = frozenset({"title", "message", "channels", "priority", "delay_seconds"})


def content_patch(variant: Variant) -> dict[str, str] | None:
    """What ``variant`` changes in a send's validated in-app content when that is only its
    title and message, validated here once: the send's content with these laid over it is
    what validating the variant's send would give (each field is checked on its own).
    ``None`` when the variant changes more (template, content, template key) or its title
    or message is refused: each of its sends is then validated as the variant makes it."""
    over = variant.overrides
    if not set(over) <= _SAME_CONTENT:
        return None
    try:
        checked = validate_content(
            TemplateKind.SIMPLE,
            title=over.get("title", "t"),
            message=over.get("message", ""),
        )
    except ValidationFailed:
        return None
    return {k: checked[k] for k in ("title", "message") if k in over}


def planned_note(config: ExperimentConfig, per_arm: int) -> str:
    arms = len(config.variants)
    return (
        f"{per_arm:,} users per variant ({per_arm * arms:,} in all) to detect a "
        f"{config.mde:.0%} relative lift on a {config.baseline:.1%} {config.metric} rate "
        f"with alpha {config.alpha:g} and power {config.power:.0%}"
    )


def arms_of(config: ExperimentConfig) -> Sequence[str]:
    keys = [v.key for v in config.variants]
    return [*keys, HOLDOUT] if config.holdout > 0 else keys


def identity(body: Mapping[str, Any]) -> tuple[str, str | None, str | None]:
    name = body.get("name")
    tt, tk = body.get("target_type"), body.get("target_template")
    problems = []
    if not isinstance(name, str) or not 0 < len(name) <= 200:
        problems.append({"field": "name", "problem": "1 to 200 characters"})
    if (tt is None) == (tk is None):
        problems.append(
            {"field": "target_type", "problem": "exactly one of target_type and target_template"}
        )
    for f, v in (("target_type", tt), ("target_template", tk)):
        if v is not None and (not isinstance(v, str) or not 0 < len(v) <= 100):
            problems.append({"field": f, "problem": "1 to 100 characters"})
    if problems:
        raise ValidationFailed("invalid experiment", problems)
    return str(name), tt, tk


def validated(body: Mapping[str, Any]) -> ExperimentConfig:
    try:
        config = ExperimentConfig.from_json(body)
    except ExperimentInvalid as exc:
        raise ValidationFailed("invalid experiment", exc.problems) from None
    for i, v in enumerate(config.variants):
        if "content" in v.overrides:
            try:
                validate_content(
                    TemplateKind(v.overrides.get("template", "simple")),
                    title=str(v.overrides.get("title", "t")),
                    message=str(v.overrides.get("message", "")),
                    media=None,
                    actions=None,
                    extra=v.overrides["content"],
                )
            except ValidationFailed as exc:
                raise ValidationFailed(
                    "invalid experiment",
                    [{"field": f"variants[{i}].content", "problem": exc.message}],
                ) from None
    return config


def check_same_variants(old: Sequence[Mapping[str, Any]], new: Any) -> None:
    if not isinstance(new, list) or sorted(
        str(v.get("key")) for v in new if isinstance(v, Mapping)
    ) != sorted(str(v["key"]) for v in old):
        raise Conflict(
            "a running experiment keeps its variants (their weights may change)",
            {"variants": [v["key"] for v in old]},
        )
