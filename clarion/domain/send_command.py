"""A send as the API or the CLI asked for it, before planning: who, what, which channels,
when. Batches and schedules store it (without recipients) as JSON and rebuild it later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from clarion.domain.types import ChannelName, Priority, TemplateKind


@dataclass(frozen=True)
class SendCommand:
    user_ids: tuple[str, ...]
    type: str
    title: str
    message: str = ""
    template: TemplateKind = TemplateKind.SIMPLE
    priority: Priority = Priority.NORMAL
    channels: tuple[ChannelName, ...] = (ChannelName.IN_APP,)
    media: Mapping[str, Any] | None = None
    actions: Sequence[Mapping[str, Any]] | None = None
    content: Mapping[str, Any] | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    group_key: str | None = None
    template_key: str | None = None
    scheduled_for: datetime | None = None
    cancellation_key: str | None = None

    def replaced(self, changes: Mapping[str, Any]) -> SendCommand:
        """``dataclasses.replace`` for values already of their fields' types, without
        running ``__init__`` again: a tenth of its cost, paid per recipient group of a
        send in an experiment."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.__dict__.update(changes)
        return new

    def to_json(self) -> dict[str, Any]:
        """The command without its recipients, as stored by batches and schedules."""
        out = asdict(self)
        del out["user_ids"]
        out["channels"] = [str(c) for c in self.channels]
        out["template"] = str(self.template)
        out["priority"] = str(self.priority)
        out["actions"] = None if self.actions is None else [dict(a) for a in self.actions]
        out["scheduled_for"] = None
        return out

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], user_ids: Sequence[str]) -> SendCommand:
        values = dict(doc)
        values["channels"] = tuple(ChannelName(c) for c in values.get("channels") or ["in_app"])
        values["template"] = TemplateKind(values.get("template", "simple"))
        values["priority"] = Priority(values.get("priority", "normal"))
        values["scheduled_for"] = None
        known = set(cls.__dataclass_fields__) - {"user_ids"}
        return cls(user_ids=tuple(user_ids), **{k: v for k, v in values.items() if k in known})
